"""Reads and writes of the metadata store. Core SQL, executemany, one transaction per batch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airloop.exceptions import RunExistsError
from airloop.store.database import (
    DatabaseError,
    create_engine,
    create_schema,
    current_revision,
    head_revision,
    migrate,
)
from airloop.store.schema import dag as dag_table
from airloop.store.schema import (
    dag_run,
    import_error,
    scheduler_heartbeat,
    task_instance,
    task_log,
    xcom,
)

log = logging.getLogger(__name__)


def _is_older(revision: str | None, head: str) -> bool:
    return revision is not None and revision.isdigit() and revision < head


async def _insert_run(
    conn: AsyncConnection,
    *,
    data_interval: tuple[datetime, datetime] | None,
    **values: Any,
) -> int:
    """Insert one dag_run row and return its primary key."""
    result = await conn.execute(
        insert(dag_run).values(
            **values,
            data_interval_start=data_interval[0] if data_interval else None,
            data_interval_end=data_interval[1] if data_interval else None,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


#: The task-instance columns the scheduler rewrites when a task instance changes.
TI_MUTABLE = (
    "state",
    "try_number",
    "queued_at",
    "start_date",
    "end_date",
    "duration",
    "hostname",
    "executor",
    "next_retry_at",
    "error",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class WriteBatch:
    """Everything one scheduler tick changes, written in one transaction."""

    #: (dag_run pk, task_id, count): a mapped placeholder row becomes ``count`` rows.
    expansions: list[tuple[int, str, int]] = field(default_factory=list)
    ti_updates: list[dict[str, Any]] = field(default_factory=list)
    xcoms: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    run_updates: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.expansions or self.ti_updates or self.xcoms or self.logs or self.run_updates
        )

    def __len__(self) -> int:
        return (
            len(self.expansions)
            + len(self.ti_updates)
            + len(self.xcoms)
            + len(self.logs)
            + len(self.run_updates)
        )


_ti = task_instance.c
_UPDATE_TI = (
    update(task_instance)
    .where(
        and_(
            _ti.dag_run_id == bindparam("b_run"),
            _ti.task_id == bindparam("b_task"),
            _ti.map_index == bindparam("b_index"),
        )
    )
    .values({name: bindparam(name) for name in (*TI_MUTABLE, "updated_at")})
)
_UPDATE_CHECKPOINT = (
    update(task_instance)
    .where(
        and_(
            _ti.dag_run_id == bindparam("b_run"),
            _ti.task_id == bindparam("b_task"),
            _ti.map_index == bindparam("b_index"),
        )
    )
    .values(checkpoint=bindparam("checkpoint"), updated_at=bindparam("updated_at"))
)
_UPDATE_RUN = (
    update(dag_run)
    .where(dag_run.c.id == bindparam("b_id"))
    .values(
        state=bindparam("state"),
        end_date=bindparam("end_date"),
        note=bindparam("note"),
    )
)


class Store:
    """The scheduler's only door to the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(
        cls, url: str, *, auto_migrate: bool = True, pool_size: int = 10, max_overflow: int = 20
    ) -> Store:
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        try:
            revision = await current_revision(engine)
            head = head_revision()
            if revision is None and auto_migrate:
                # An empty database is created on first use. An existing server database
                # is only ever upgraded on purpose ('airloop db migrate'): on a shared
                # server one upgraded CLI must not change the schema under everyone else.
                try:
                    await create_schema(engine)
                except Exception:
                    # Two processes creating it at once: fine if the other one did.
                    if await current_revision(engine) != head_revision():
                        raise
            elif (
                auto_migrate
                and engine.url.get_backend_name() == "sqlite"
                and _is_older(revision, head)
            ):
                # A SQLite file belongs to this one installation: upgrading airloop
                # upgrades its embedded database too, as 'make demo' twice across an
                # upgrade expects. Revision ids are zero-padded sequence numbers.
                log.warning(
                    "upgrading SQLite database %s from schema %s to %s",
                    engine.url.database,
                    revision,
                    head,
                )
                await migrate(engine)
            elif revision != head:
                raise DatabaseError(
                    f"database schema is at {revision or 'nothing'}, this airloop needs {head}: "
                    "run 'airloop db migrate'"
                )
        except DatabaseError:
            await engine.dispose()
            raise
        except Exception as exc:
            await engine.dispose()
            raise DatabaseError(f"cannot open database {engine.url!r}: {exc}") from exc
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- runs -----------------------------------------------------------------------

    async def create_run(
        self,
        *,
        dag_id: str,
        run_id: str,
        run_type: str,
        logical_date: datetime,
        params: dict[str, Any],
        task_instances: Sequence[dict[str, Any]],
        data_interval: tuple[datetime, datetime] | None = None,
        existing_pk: int | None = None,
    ) -> int:
        """Insert the run and its task instances (state ``none``) in one transaction.

        With ``existing_pk``, the run row exists already (queued by ``airloop dags
        trigger``): it is marked running and gets its task instances.
        """
        now = utcnow()
        async with self.engine.begin() as conn:
            if existing_pk is not None:
                await conn.execute(
                    update(dag_run)
                    .where(dag_run.c.id == existing_pk)
                    .values(state="running", start_date=now, params=params)
                )
                run_pk = existing_pk
            else:
                run_pk = await _insert_run(
                    conn,
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type=run_type,
                    state="running",
                    logical_date=logical_date,
                    params=params,
                    data_interval=data_interval,
                    created_at=now,
                    start_date=now,
                )
            if task_instances:
                await conn.execute(
                    insert(task_instance),
                    [
                        {
                            "dag_run_id": run_pk,
                            "map_index": -1,
                            "state": "none",
                            "try_number": 0,
                            "updated_at": now,
                            **ti,
                        }
                        for ti in task_instances
                    ],
                )
        return run_pk

    async def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        now = utcnow()
        async with self.engine.begin() as conn:
            for run_pk, task_id, count in batch.expansions:
                await self._expand(conn, run_pk, task_id, count, now)
            if batch.ti_updates:
                for row in batch.ti_updates:
                    row["updated_at"] = now
                await conn.execute(_UPDATE_TI, batch.ti_updates)
            if batch.xcoms:
                await conn.execute(insert(xcom), [{"created_at": now, **x} for x in batch.xcoms])
            if batch.logs:
                await conn.execute(insert(task_log), [{"created_at": now, **x} for x in batch.logs])
            if batch.run_updates:
                await conn.execute(_UPDATE_RUN, batch.run_updates)

    @staticmethod
    async def _expand(conn: Any, run_pk: int, task_id: str, count: int, now: datetime) -> None:
        where = and_(_ti.dag_run_id == run_pk, _ti.task_id == task_id, _ti.map_index == -1)
        template = (await conn.execute(select(task_instance).where(where))).mappings().one()
        await conn.execute(update(task_instance).where(where).values(map_index=0, updated_at=now))
        if count > 1:
            base = {k: v for k, v in template.items() if k not in ("id", "map_index")}
            base["updated_at"] = now
            await conn.execute(
                insert(task_instance), [{**base, "map_index": i} for i in range(1, count)]
            )

    async def save_checkpoints(self, rows: list[dict[str, Any]]) -> None:
        """Durably record task instances' checkpoints, in one short transaction.

        The one write outside the scheduler's batches: an operator must know its handle
        on external work is stored before it waits (the scheduler never writes this
        column, so the two cannot overwrite each other). Rows: b_run, b_task, b_index,
        checkpoint.
        """
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(_UPDATE_CHECKPOINT, [{**row, "updated_at": now} for row in rows])

    # -- reads ----------------------------------------------------------------------

    async def find_runs(self, run_id: str, dag_id: str | None = None) -> list[Row[Any]]:
        query = select(dag_run).where(dag_run.c.run_id == run_id)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query.order_by(dag_run.c.id))).all())

    async def latest_runs(self, limit: int = 10, dag_id: str | None = None) -> list[Row[Any]]:
        query = select(dag_run).order_by(dag_run.c.id.desc()).limit(limit)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def task_instances(self, run_pk: int) -> list[Row[Any]]:
        query = (
            select(task_instance).where(_ti.dag_run_id == run_pk).order_by(_ti.id, _ti.map_index)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def state_counts(self, run_pk: int) -> dict[str, int]:
        query = select(_ti.state, func.count()).where(_ti.dag_run_id == run_pk).group_by(_ti.state)
        async with self.engine.connect() as conn:
            return {state: int(n) for state, n in (await conn.execute(query)).all()}

    async def xcom_values(self, run_pk: int) -> list[Row[Any]]:
        query = select(xcom).where(xcom.c.dag_run_id == run_pk).order_by(xcom.c.id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def log_paths(self, run_pk: int) -> list[Row[Any]]:
        query = select(task_log).where(task_log.c.dag_run_id == run_pk).order_by(task_log.c.id)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())


class ServiceStore:
    """What the scheduler service and its CLI commands read and write besides runs."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    async def sync_dags(
        self, dags: dict[str, tuple[str, str | None]], errors: list[dict[str, Any]]
    ) -> dict[str, bool]:
        """Record the DAGs found (dag_id -> (file, schedule)) and the import errors;
        DAGs no longer found become inactive. Returns dag_id -> is_paused."""
        now = utcnow()
        async with self.engine.begin() as conn:
            known = {r.dag_id: r for r in (await conn.execute(select(dag_table))).all()}
            for dag_id, (fileloc, schedule) in dags.items():
                values = {
                    "fileloc": fileloc,
                    "schedule": schedule,
                    "is_active": True,
                    "last_parsed": now,
                }
                if dag_id in known:
                    await conn.execute(
                        update(dag_table).where(dag_table.c.dag_id == dag_id).values(**values)
                    )
                else:
                    await conn.execute(
                        insert(dag_table).values(dag_id=dag_id, is_paused=False, **values)
                    )
            gone = [d for d in known if d not in dags]
            if gone:
                await conn.execute(
                    update(dag_table).where(dag_table.c.dag_id.in_(gone)).values(is_active=False)
                )
            await conn.execute(import_error.delete())
            if errors:
                await conn.execute(insert(import_error), [{"created_at": now, **e} for e in errors])
            rows = (await conn.execute(select(dag_table.c.dag_id, dag_table.c.is_paused))).all()
        return {r.dag_id: bool(r.is_paused) for r in rows}

    async def set_paused(self, dag_id: str, paused: bool) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(dag_table).where(dag_table.c.dag_id == dag_id).values(is_paused=paused)
            )
            return bool(result.rowcount)

    async def paused(self) -> dict[str, bool]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(dag_table.c.dag_id, dag_table.c.is_paused))).all()
        return {r.dag_id: bool(r.is_paused) for r in rows}

    async def import_errors(self) -> list[Row[Any]]:
        async with self.engine.connect() as conn:
            return list(
                (await conn.execute(select(import_error).order_by(import_error.c.fileloc))).all()
            )

    async def last_interval_end(self, dag_id: str) -> datetime | None:
        # Backfilled intervals count too: a schedule never re-creates an interval.
        query = select(func.max(dag_run.c.data_interval_end)).where(
            and_(dag_run.c.dag_id == dag_id, dag_run.c.run_type.in_(["scheduled", "backfill"]))
        )
        async with self.engine.connect() as conn:
            value: datetime | None = (await conn.execute(query)).scalar()
        # max() of a UtcDateTime column comes back as the driver's naive UTC value.
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    async def runs(
        self,
        *,
        dag_id: str | None = None,
        state: str | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
    ) -> list[Row[Any]]:
        order = dag_run.c.id.asc() if oldest_first else dag_run.c.id.desc()
        query = select(dag_run).order_by(order).limit(limit)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        if state is not None:
            query = query.where(dag_run.c.state == state)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def queue_run(
        self,
        dag_id: str,
        run_id: str,
        params: dict[str, Any],
        logical_date: datetime,
        *,
        run_type: str = "manual",
        data_interval: tuple[datetime, datetime] | None = None,
    ) -> int:
        """A run for the scheduler service to start (``airloop dags trigger|backfill``)."""
        async with self.engine.begin() as conn:
            return await _insert_run(
                conn,
                dag_id=dag_id,
                run_id=run_id,
                run_type=run_type,
                state="queued",
                logical_date=logical_date,
                params=params,
                data_interval=data_interval,
                created_at=utcnow(),
            )

    async def clear(self, run_pk: int, task_ids: list[str] | None, failed_only: bool) -> int:
        """Make task instances run again: back to ``none`` (mapped ones to one
        placeholder, expanded again at run time), their XComs dropped, and the run
        queued for the scheduler service, which resumes it. Returns how many."""
        ti = task_instance.c
        async with self.engine.connect() as conn:
            state = (
                await conn.execute(select(dag_run.c.state).where(dag_run.c.id == run_pk))
            ).scalar()
        if state in ("running", "queued"):
            raise RunExistsError(
                f"the run is {state}: clear it once it has finished (a running run "
                "cannot be changed under the scheduler)"
            )
        where = ti.dag_run_id == run_pk
        if task_ids:
            where = and_(where, ti.task_id.in_(task_ids))
        if failed_only:
            where = and_(where, ti.state.in_(["failed", "upstream_failed"]))
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(ti.task_id, ti.map_index).where(where))).all()
            if not rows:
                return 0
            # Clearing whole mapped tasks: one placeholder again, expanded at run time.
            # Clearing only failed instances keeps the expansion and the successes.
            mapped = [] if failed_only else sorted({r.task_id for r in rows if r.map_index >= 0})
            for task_id in mapped:
                await conn.execute(
                    task_instance.delete().where(
                        and_(ti.dag_run_id == run_pk, ti.task_id == task_id, ti.map_index > 0)
                    )
                )
                await conn.execute(
                    update(task_instance)
                    .where(and_(ti.dag_run_id == run_pk, ti.task_id == task_id))
                    .values(map_index=-1)
                )
            cleared = sorted({r.task_id for r in rows})
            scope = (
                where  # just the rows chosen (failed ones)
                if failed_only
                else and_(ti.dag_run_id == run_pk, ti.task_id.in_(cleared))
            )
            await conn.execute(
                update(task_instance)
                .where(scope)
                .values(
                    state="none",
                    error=None,
                    start_date=None,
                    end_date=None,
                    duration=None,
                    next_retry_at=None,
                    checkpoint=None,
                    updated_at=utcnow(),
                )
            )
            for row in rows if failed_only else []:
                await conn.execute(
                    xcom.delete().where(
                        and_(
                            xcom.c.dag_run_id == run_pk,
                            xcom.c.task_id == row.task_id,
                            xcom.c.map_index == row.map_index,
                        )
                    )
                )
            if not failed_only:
                await conn.execute(
                    xcom.delete().where(
                        and_(xcom.c.dag_run_id == run_pk, xcom.c.task_id.in_(cleared))
                    )
                )
            await conn.execute(
                update(dag_run)
                .where(dag_run.c.id == run_pk)
                .values(state="queued", end_date=None, note=None)
            )
        return len(rows)

    async def set_run_state(self, run_pk: int, state: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(dag_run).where(dag_run.c.id == run_pk).values(state=state))

    async def has_task_instances(self, run_pk: int) -> bool:
        query = select(func.count()).where(task_instance.c.dag_run_id == run_pk)
        async with self.engine.connect() as conn:
            return bool((await conn.execute(query)).scalar())

    async def fail_run(self, run_pk: int, note: str) -> None:
        """Fail a run that cannot go on, and every task instance of it still open."""
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(dag_run)
                .where(dag_run.c.id == run_pk)
                .values(state="failed", end_date=now, note=note)
            )
            await conn.execute(
                update(task_instance)
                .where(
                    and_(
                        task_instance.c.dag_run_id == run_pk,
                        task_instance.c.state.in_(
                            ["scheduled", "queued", "running", "up_for_retry"]
                        ),
                    )
                )
                .values(state="failed", error=note, end_date=now, updated_at=now)
            )

    async def heartbeat(self, row_id: int | None, **values: Any) -> int:
        now = utcnow()
        async with self.engine.begin() as conn:
            if row_id is None:
                result = await conn.execute(
                    insert(scheduler_heartbeat).values(started_at=now, heartbeat_at=now, **values)
                )
                pk = result.inserted_primary_key
                assert pk is not None
                return int(pk[0])
            await conn.execute(
                update(scheduler_heartbeat)
                .where(scheduler_heartbeat.c.id == row_id)
                .values(heartbeat_at=now, **values)
            )
            return row_id

    async def latest_heartbeat(self) -> Row[Any] | None:
        query = select(scheduler_heartbeat).order_by(scheduler_heartbeat.c.id.desc()).limit(1)
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first()
