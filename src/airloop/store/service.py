"""Service bookkeeping: the DAG table and import errors, pausing, queued runs,
clearing, and the scheduler's heartbeat. What the scheduler service and the CLI
commands that steer it read and write besides the runs themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.core.states import DagRunState, TaskState
from airloop.exceptions import RunExistsError
from airloop.store.errors import begin, connect
from airloop.store.notify import notify, notify_run
from airloop.store.records import DagRunRow, HeartbeatRow, ImportErrorRow
from airloop.store.runs import Store, conflict, insert_run, run_row, utcnow, which_conflict
from airloop.store.scheduler_status import SchedulerStatus, scheduler_statuses
from airloop.store.schema import dag as dag_table
from airloop.store.schema import (
    dag_run,
    import_error,
    scheduler_heartbeat,
    serialized_dag,
    task_instance,
    xcom,
)

#: Task instances a run that cannot go on leaves unfinished (fail_run fails them).
_OPEN = [
    s.value
    for s in (TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY)
]
_FAILED = [TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value]


async def _store_serialized(
    conn: AsyncConnection,
    dags: Mapping[str, tuple[str, str | None]],
    serialized: Mapping[str, tuple[str, str]],
    now: datetime,
) -> None:
    """Write the structures whose hash changed (a DAG that moved file counts)."""
    c = serialized_dag.c
    stored = {
        r.dag_id: (r.dag_hash, r.fileloc)
        for r in await conn.execute(select(c.dag_id, c.dag_hash, c.fileloc))
    }
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for dag_id, (text, digest) in sorted(serialized.items()):
        fileloc = dags[dag_id][0] if dag_id in dags else ""
        old = stored.get(dag_id)
        if old == (digest, fileloc):
            continue
        row = {"data": text, "dag_hash": digest, "fileloc": fileloc, "updated_at": now}
        if old is None:
            new.append({"dag_id": dag_id, **row})
        else:
            changed.append({"b_dag_id": dag_id, **row})
    # One statement each, many rows (a first parse of 1,000 DAGs is two round trips).
    if new:
        await conn.execute(insert(serialized_dag), new)
    if changed:
        await conn.execute(update(serialized_dag).where(c.dag_id == bindparam("b_dag_id")), changed)
    gone = [d for d in stored if d not in serialized]
    if gone:
        await conn.execute(delete(serialized_dag).where(c.dag_id.in_(gone)))


class ServiceStore:
    """What the scheduler service and its CLI commands read and write besides runs."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.store = store
        self.events = store.events

    async def sync_dags(
        self,
        dags: dict[str, tuple[str, str | None]],
        errors: Sequence[ImportErrorRow],
        serialized: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, bool]:
        """Record the DAGs found (dag_id -> (file, schedule)) and the import errors;
        DAGs no longer found become inactive. ``serialized`` (dag_id -> (JSON text,
        hash)) replaces a DAG's stored structure when its hash changed. Returns
        dag_id -> is_paused."""
        now = utcnow()
        async with begin(self.engine) as conn:
            known = {r.dag_id for r in await conn.execute(select(dag_table.c.dag_id))}
            if serialized is not None:
                await _store_serialized(conn, dags, serialized, now)
            # In dag_id order: the lock order every writer of DAG rows keeps (several
            # schedulers sync, claim and fence the same rows; ADR 0041).
            for dag_id, (fileloc, schedule) in sorted(dags.items()):
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
                await conn.execute(
                    insert(import_error),
                    [
                        {
                            "fileloc": e.fileloc,
                            "line": e.line,
                            "message": e.message,
                            "traceback": e.traceback,
                            "created_at": now,
                        }
                        for e in errors
                    ],
                )
            rows = (await conn.execute(select(dag_table.c.dag_id, dag_table.c.is_paused))).all()
        return {r.dag_id: bool(r.is_paused) for r in rows}

    async def set_paused(self, dag_id: str, paused: bool) -> bool:
        async with begin(self.engine) as conn:
            result = await conn.execute(
                update(dag_table).where(dag_table.c.dag_id == dag_id).values(is_paused=paused)
            )
            if result.rowcount:
                await notify(conn, "paused" if paused else "unpaused", dag_id)
            return bool(result.rowcount)

    async def paused(self) -> dict[str, bool]:
        async with connect(self.engine) as conn:
            rows = (await conn.execute(select(dag_table.c.dag_id, dag_table.c.is_paused))).all()
        return {r.dag_id: bool(r.is_paused) for r in rows}

    async def import_errors(self) -> list[ImportErrorRow]:
        c = import_error.c
        query = select(c.fileloc, c.line, c.message, c.traceback).order_by(c.fileloc)
        async with connect(self.engine) as conn:
            return [ImportErrorRow(*r) for r in await conn.execute(query)]

    async def last_interval_end(self, dag_id: str) -> datetime | None:
        # Backfilled intervals count too: a schedule never re-creates an interval.
        query = select(func.max(dag_run.c.data_interval_end)).where(
            and_(dag_run.c.dag_id == dag_id, dag_run.c.run_type.in_(["scheduled", "backfill"]))
        )
        async with connect(self.engine) as conn:
            value: datetime | None = (await conn.execute(query)).scalar()
        # max() of a UtcDateTime column comes back as the driver's naive UTC value.
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    async def runs(
        self,
        *,
        dag_id: str | None = None,
        state: DagRunState | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
    ) -> list[DagRunRow]:
        order = dag_run.c.id.asc() if oldest_first else dag_run.c.id.desc()
        query = select(dag_run).order_by(order).limit(limit)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        if state is not None:
            query = query.where(dag_run.c.state == state.value)
        async with connect(self.engine) as conn:
            return [run_row(r) for r in await conn.execute(query)]

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
        """A run for the scheduler service to start (``airloop dags trigger|backfill``).
        RunExistsError if the DAG has a run with this id or logical date already."""
        try:
            async with begin(
                self.engine, RunExistsError, conflict(dag_id, run_id, logical_date)
            ) as conn:
                run_pk = await insert_run(
                    conn,
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type=run_type,
                    state=DagRunState.QUEUED.value,
                    logical_date=logical_date,
                    params=params,
                    data_interval=data_interval,
                    created_at=utcnow(),
                )
                await notify(conn, "queued", dag_id)
        except RunExistsError:
            raise RunExistsError(
                await which_conflict(self.engine, dag_id, run_id, logical_date)
            ) from None
        self.events.run_queued(dag_id, run_pk)
        return run_pk

    async def clear(
        self,
        run_pk: int,
        task_ids: list[str] | None,
        failed_only: bool,
        map_indexes: Sequence[int] | None = None,
    ) -> int:
        """Make task instances run again: back to ``none`` (mapped ones to one
        placeholder, expanded again at run time), their XComs dropped, and the run
        queued for the scheduler service, which resumes it. Returns how many.
        ``map_indexes``: only these instances of the tasks (the expansion is kept)."""
        ti = task_instance.c
        async with connect(self.engine) as conn:
            state = (
                await conn.execute(select(dag_run.c.state).where(dag_run.c.id == run_pk))
            ).scalar()
        if state in (DagRunState.RUNNING, DagRunState.QUEUED):
            raise RunExistsError(
                f"the run is {state}: clear it once it has finished (a running run "
                "cannot be changed under the scheduler)"
            )
        where = ti.dag_run_id == run_pk
        if task_ids:
            where = and_(where, ti.task_id.in_(task_ids))
        if failed_only:
            where = and_(where, ti.state.in_(_FAILED))
        if map_indexes is not None:
            where = and_(where, ti.map_index.in_(list(map_indexes)))
        # Clearing chosen instances (failed ones, given map indexes) keeps the rest.
        rows_only = failed_only or map_indexes is not None
        async with begin(self.engine) as conn:
            rows = (await conn.execute(select(ti.task_id, ti.map_index).where(where))).all()
            if not rows:
                return 0
            # Clearing whole mapped tasks: one placeholder again, expanded at run time.
            # Clearing only failed instances keeps the expansion and the successes.
            mapped = [] if rows_only else sorted({r.task_id for r in rows if r.map_index >= 0})
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
                where  # just the rows chosen (failed ones, given map indexes)
                if rows_only
                else and_(ti.dag_run_id == run_pk, ti.task_id.in_(cleared))
            )
            await conn.execute(
                update(task_instance)
                .where(scope)
                .values(
                    state=TaskState.NONE.value,
                    error=None,
                    start_date=None,
                    end_date=None,
                    duration=None,
                    next_retry_at=None,
                    checkpoint=None,
                    updated_at=utcnow(),
                )
            )
            for row in rows if rows_only else []:
                await conn.execute(
                    xcom.delete().where(
                        and_(
                            xcom.c.dag_run_id == run_pk,
                            xcom.c.task_id == row.task_id,
                            xcom.c.map_index == row.map_index,
                        )
                    )
                )
            if not rows_only:
                await conn.execute(
                    xcom.delete().where(
                        and_(xcom.c.dag_run_id == run_pk, xcom.c.task_id.in_(cleared))
                    )
                )
            await conn.execute(
                update(dag_run)
                .where(dag_run.c.id == run_pk)
                .values(state=DagRunState.QUEUED.value, end_date=None, note=None)
            )
            await notify_run(conn, "cleared", run_pk)
        self.events.queued.set()
        self.events.changed(run_pks=(run_pk,))
        return len(rows)

    async def set_run_state(self, run_pk: int, state: DagRunState) -> None:
        async with begin(self.engine) as conn:
            await conn.execute(
                update(dag_run).where(dag_run.c.id == run_pk).values(state=state.value)
            )
            await notify_run(conn, state.value, run_pk)
        self.events.changed(run_pks=(run_pk,))

    async def has_task_instances(self, run_pk: int) -> bool:
        query = select(func.count()).where(task_instance.c.dag_run_id == run_pk)
        async with connect(self.engine) as conn:
            return bool((await conn.execute(query)).scalar())

    async def fail_run(self, run_pk: int, note: str) -> None:
        """Fail a run that cannot go on, and every task instance of it still open."""
        now = utcnow()
        async with begin(self.engine) as conn:
            await conn.execute(
                update(dag_run)
                .where(dag_run.c.id == run_pk)
                .values(state=DagRunState.FAILED.value, end_date=now, note=note)
            )
            await conn.execute(
                update(task_instance)
                .where(and_(task_instance.c.dag_run_id == run_pk, task_instance.c.state.in_(_OPEN)))
                .values(state=TaskState.FAILED.value, error=note, end_date=now, updated_at=now)
            )
        self.events.changed(run_pks=(run_pk,))

    async def heartbeat(self, row_id: int | None, **values: Any) -> int:
        """Insert (``row_id`` None) or update this scheduler's heartbeat row. Values:
        hostname, pid, state, loop_lag, running_tasks, active_runs."""
        now = utcnow()
        async with begin(self.engine) as conn:
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

    async def schedulers(
        self, *, stale_after: float, include_old: bool = False
    ) -> list[SchedulerStatus]:
        """Every scheduler in the registry with its heartbeat's age and whether it is
        alive, on the database's clock (see ``airloop.store.scheduler_status``)."""
        return await scheduler_statuses(
            self.store, stale_after=stale_after, include_old=include_old
        )

    async def latest_heartbeat(self) -> HeartbeatRow | None:
        query = select(scheduler_heartbeat).order_by(scheduler_heartbeat.c.id.desc()).limit(1)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else HeartbeatRow(**row._mapping)
