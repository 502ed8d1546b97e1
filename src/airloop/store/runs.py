"""Run bookkeeping: a run and its task instances created, the scheduler's batched
writes, and the reads of what a run recorded. Core SQL, one transaction per batch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airloop.core.states import DagRunState, TaskState
from airloop.core.stats import FAST_BUCKETS, Histogram
from airloop.exceptions import LeaseLostError, RunExistsError
from airloop.store.database import open_engine
from airloop.store.errors import begin, connect
from airloop.store.fencing import Fence, dags_of_runs, report_lost, stale_dags
from airloop.store.records import (
    CheckpointRow,
    DagRunRow,
    Expansion,
    LogRow,
    NewTaskInstance,
    RefusedStart,
    RenderedRow,
    TaskInstanceRow,
    WriteBatch,
    WriteResult,
    XComRow,
)
from airloop.store.run_events import RunEvents
from airloop.store.schema import (
    dag_run,
    rendered_task_instance_fields,
    task_instance,
    task_log,
    xcom,
)
from airloop.store.writes import LeanWriter


def utcnow() -> datetime:
    return datetime.now(UTC)


#: What a batch without refused starts returns (the normal case).
ALL_WRITTEN = WriteResult()


async def insert_run(
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


def conflict(dag_id: str, run_id: str, logical_date: datetime | None) -> str:
    """The error for a run that would break (dag_id, run_id) or (dag_id, logical_date)."""
    if logical_date is None:
        return f"DAG {dag_id!r} already has a run {run_id!r}"
    return (
        f"DAG {dag_id!r} already has a run {run_id!r} or a run for logical date "
        f"{logical_date.isoformat()} (one run per DAG and logical date: give another one)"
    )


async def which_conflict(
    engine: AsyncEngine, dag_id: str, run_id: str, logical_date: datetime | None
) -> str:
    """``conflict``, said precisely: which of the two the DAG's existing run holds."""
    c = dag_run.c
    async with connect(engine) as conn:
        if (
            await conn.execute(select(c.id).where(c.dag_id == dag_id, c.run_id == run_id))
        ).first() is not None:
            return f"DAG {dag_id!r} already has a run {run_id!r}"
        if logical_date is not None:
            row = (
                await conn.execute(
                    select(c.run_id).where(c.dag_id == dag_id, c.logical_date == logical_date)
                )
            ).first()
            if row is not None:
                return (
                    f"DAG {dag_id!r} already has a run for logical date "
                    f"{logical_date.isoformat()} ({row.run_id!r}); one run per DAG and "
                    "logical date: give another one"
                )
    return conflict(dag_id, run_id, logical_date)


def run_row(row: Any) -> DagRunRow:
    return DagRunRow(**{**row._mapping, "state": DagRunState(row.state)})


_ti = task_instance.c
_UPDATE_RUN = (
    update(dag_run)
    .where(dag_run.c.id == bindparam("b_id"))
    .values(state=bindparam("state"), end_date=bindparam("end_date"), note=bindparam("note"))
)


def _ended_in(batch: WriteBatch) -> set[int]:
    """The runs whose state a batch changes."""
    return {u.run_pk for u in batch.run_updates}


def _tasks_in(batch: WriteBatch) -> dict[int, set[str]]:
    """The task ids whose instances a batch changes, per run."""
    tasks: dict[int, set[str]] = {}
    for u in batch.ti_updates:
        tasks.setdefault(u.run_pk, set()).add(u.task_id)
    for e in batch.expansions:
        tasks.setdefault(e.run_pk, set()).add(e.task_id)
    return tasks


class Store:
    """The scheduler's only door to the database: runs, their task instances, XComs
    and log rows. Takes and returns records (airloop.store.records)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._lean: LeanWriter | None = None
        #: Changes written through this store, for waiters in this process (ADR 0036).
        self.events = RunEvents()
        #: Seconds each committed batch of the scheduler's writes took (/metrics).
        self.write_seconds = Histogram(FAST_BUCKETS)
        #: The DAG leases this store's writes are fenced by (several schedulers,
        #: ADR 0041); None: unfenced (one scheduler, the library API).
        self.fence: Fence | None = None

    @classmethod
    async def open(
        cls, url: str, *, auto_migrate: bool = True, pool_size: int = 10, max_overflow: int = 20
    ) -> Store:
        return cls(
            await open_engine(
                url, auto_migrate=auto_migrate, pool_size=pool_size, max_overflow=max_overflow
            )
        )

    async def close(self) -> None:
        await self.events.reads.aclose()
        await self.engine.dispose()

    def _writer(self) -> LeanWriter:
        if self._lean is None:
            self._lean = LeanWriter(self.engine.dialect)
        return self._lean

    # -- runs -----------------------------------------------------------------------

    async def create_run(
        self,
        *,
        dag_id: str,
        run_id: str,
        run_type: str,
        logical_date: datetime | None,
        params: dict[str, Any],
        task_instances: Sequence[NewTaskInstance],
        data_interval: tuple[datetime, datetime] | None = None,
        existing_pk: int | None = None,
    ) -> int:
        """Insert the run and its task instances (state ``none``) in one transaction.

        With ``existing_pk``, the run row exists already (queued by ``airloop dags
        trigger``): it is marked running and gets its task instances. RunExistsError if
        the DAG has a run with this run id or logical date already.
        """
        now = utcnow()
        async with begin(
            self.engine, RunExistsError, conflict(dag_id, run_id, logical_date)
        ) as conn:
            if self.fence is not None and await stale_dags(conn, self.fence, [dag_id]):
                raise LeaseLostError(
                    f"DAG {dag_id!r}: its lease moved to another scheduler; run {run_id!r} "
                    "is not created here"
                )
            if existing_pk is not None:
                await conn.execute(
                    update(dag_run)
                    .where(dag_run.c.id == existing_pk)
                    .values(state=DagRunState.RUNNING.value, start_date=now, params=params)
                )
                run_pk = existing_pk
            else:
                run_pk = await insert_run(
                    conn,
                    dag_id=dag_id,
                    run_id=run_id,
                    run_type=run_type,
                    state=DagRunState.RUNNING.value,
                    logical_date=logical_date,
                    params=params,
                    data_interval=data_interval,
                    created_at=now,
                    start_date=now,
                )
            if task_instances:
                await self._writer().new_task_instances(conn, run_pk, task_instances, now)
        self.bind_run(run_pk, dag_id)
        self.events.changed(run_pks=(run_pk,), dag_ids=(dag_id,))
        return run_pk

    def bind_run(self, run_pk: int, dag_id: str) -> None:
        """Say which DAG a run belongs to, for fencing its writes."""
        if self.fence is not None:
            self.fence.run_dags[run_pk] = dag_id

    async def _stale_runs(self, conn: AsyncConnection, run_pks: set[int]) -> set[int]:
        """Of ``run_pks``, the runs whose DAG's lease this store no longer holds."""
        fence = self.fence
        if fence is None or not run_pks:
            return set()
        await dags_of_runs(conn, fence, run_pks)
        dags = {fence.run_dags[pk] for pk in run_pks if pk in fence.run_dags}
        stale = await stale_dags(conn, fence, dags)
        return {pk for pk in run_pks if fence.run_dags.get(pk) in stale or pk not in fence.run_dags}

    def _lost(self, stale_runs: set[int], discarded: int, what: str) -> None:
        fence = self.fence
        if fence is None or not stale_runs:
            return
        dags = {fence.run_dags[pk] for pk in stale_runs if pk in fence.run_dags}
        report_lost(fence, dags, discarded, what)

    async def write(self, batch: WriteBatch) -> WriteResult:
        """Write one tick's changes in one transaction (TransientDatabaseError: try again).

        Fenced (several schedulers): the rows about runs whose DAG lease moved are not
        written; the result names those runs. A start (a TIUpdate with a guard) whose
        row does not hold the guarded try number is not written: it is returned as
        refused, and the rest of the batch commits. Writing the same batch again after
        it committed refuses nothing (its starts are found exactly as it wrote them).
        """
        if not batch:
            return ALL_WRITTEN
        now = utcnow()
        lean = self._writer()
        started = time.perf_counter()
        stale: set[int] = set()
        whole = batch
        refused: list[RefusedStart] = []
        async with begin(self.engine) as conn:
            if self.fence is not None:
                stale = await self._stale_runs(conn, batch.run_pks())
                if stale:
                    batch = batch.without(stale)
            for expansion in batch.expansions:
                await self._expand(conn, expansion, now)
            if batch.ti_updates:
                refused = await lean.ti_updates(conn, batch.ti_updates, now)
            if batch.xcoms:
                await lean.xcoms(conn, batch.xcoms, now)
            if batch.logs:
                await lean.logs(conn, batch.logs, now)
            if batch.rendered:
                await lean.rendered(conn, batch.rendered, now)
            if batch.run_updates:
                await conn.execute(
                    _UPDATE_RUN,
                    [
                        {
                            "b_id": r.run_pk,
                            "state": r.state.value,
                            "end_date": r.end_date,
                            "note": r.note,
                        }
                        for r in batch.run_updates
                    ],
                )
        self.write_seconds.observe(time.perf_counter() - started)
        if stale:
            self._lost(stale, len(whole) - len(batch), "changes")
        if self.events.active:
            self.events.changed(run_pks=_ended_in(batch), tasks=_tasks_in(batch))
        if refused or stale:
            return WriteResult(tuple(refused), frozenset(stale))
        return ALL_WRITTEN

    @staticmethod
    async def _expand(conn: AsyncConnection, exp: Expansion, now: datetime) -> None:
        where = and_(_ti.dag_run_id == exp.run_pk, _ti.task_id == exp.task_id, _ti.map_index == -1)
        template = (await conn.execute(select(task_instance).where(where))).mappings().one()
        await conn.execute(update(task_instance).where(where).values(map_index=0, updated_at=now))
        if exp.count > 1:
            base = {k: v for k, v in template.items() if k not in ("id", "map_index")}
            base["updated_at"] = now
            await conn.execute(
                insert(task_instance), [{**base, "map_index": i} for i in range(1, exp.count)]
            )

    async def save_checkpoints(self, rows: Sequence[CheckpointRow]) -> set[int]:
        """Durably record task instances' checkpoints, in one short transaction.

        The one write outside the scheduler's batches: an operator must know its handle
        on external work is stored before it waits (the scheduler never writes this
        column, so the two cannot overwrite each other). Returns the runs whose rows
        were fenced out (their DAG's lease moved): not written.
        """
        async with begin(self.engine) as conn:
            stale = await self._stale_runs(conn, {r.run_pk for r in rows})
            if stale:
                rows = [r for r in rows if r.run_pk not in stale]
            if rows:
                await self._writer().checkpoints(conn, rows, utcnow())
        self._lost(stale, len(stale), "checkpoints")
        return stale

    # -- reads ----------------------------------------------------------------------

    async def find_runs(self, run_id: str, dag_id: str | None = None) -> list[DagRunRow]:
        query = select(dag_run).where(dag_run.c.run_id == run_id)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        async with connect(self.engine) as conn:
            return [run_row(r) for r in await conn.execute(query.order_by(dag_run.c.id))]

    async def get_run(self, run_pk: int) -> DagRunRow | None:
        """The run with this primary key, if it (still) exists."""
        query = select(dag_run).where(dag_run.c.id == run_pk)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else run_row(row)

    async def latest_runs(self, limit: int = 10, dag_id: str | None = None) -> list[DagRunRow]:
        query = select(dag_run).order_by(dag_run.c.id.desc()).limit(limit)
        if dag_id is not None:
            query = query.where(dag_run.c.dag_id == dag_id)
        async with connect(self.engine) as conn:
            return [run_row(r) for r in await conn.execute(query)]

    async def task_instances(self, run_pk: int) -> list[TaskInstanceRow]:
        query = (
            select(task_instance).where(_ti.dag_run_id == run_pk).order_by(_ti.id, _ti.map_index)
        )
        async with connect(self.engine) as conn:
            return [
                TaskInstanceRow(**{**r._mapping, "state": TaskState(r.state)})
                for r in await conn.execute(query)
            ]

    async def state_counts(self, run_pk: int) -> dict[TaskState, int]:
        query = select(_ti.state, func.count()).where(_ti.dag_run_id == run_pk).group_by(_ti.state)
        async with connect(self.engine) as conn:
            return {TaskState(state): int(n) for state, n in await conn.execute(query)}

    async def xcom_values(self, run_pk: int) -> list[XComRow]:
        c = xcom.c
        query = (
            select(c.dag_run_id, c.task_id, c.map_index, c.key, c.value)
            .where(c.dag_run_id == run_pk)
            .order_by(c.id)
        )
        async with connect(self.engine) as conn:
            return [XComRow(*r) for r in await conn.execute(query)]

    async def find_run_at(self, dag_id: str, logical_date: datetime) -> DagRunRow | None:
        """The DAG's run for ``logical_date``, if it has one."""
        query = select(dag_run).where(
            dag_run.c.dag_id == dag_id, dag_run.c.logical_date == logical_date
        )
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else run_row(row)

    async def rendered_fields(
        self, run_pk: int, task_id: str, map_index: int, try_number: int | None = None
    ) -> RenderedRow | None:
        """What a try's template fields rendered to (the latest try without
        ``try_number``); None if nothing was recorded."""
        c = rendered_task_instance_fields.c
        query = select(c.dag_run_id, c.task_id, c.map_index, c.try_number, c.rendered_fields).where(
            c.dag_run_id == run_pk, c.task_id == task_id, c.map_index == map_index
        )
        if try_number is not None:
            query = query.where(c.try_number == try_number)
        query = query.order_by(c.try_number.desc(), c.id.desc()).limit(1)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else RenderedRow(*row)

    async def log_paths(self, run_pk: int) -> list[LogRow]:
        c = task_log.c
        query = (
            select(c.dag_run_id, c.task_id, c.map_index, c.try_number, c.path)
            .where(c.dag_run_id == run_pk)
            .order_by(c.id)
        )
        async with connect(self.engine) as conn:
            return [LogRow(*r) for r in await conn.execute(query)]

    # -- reads across runs (depends_on_past, prev_*_success) -------------------------

    async def previous_run(
        self, dag_id: str, before: datetime, state: DagRunState | None = None
    ) -> DagRunRow | None:
        """The DAG's run with the latest logical date before ``before`` (of ``state``)."""
        query = (
            select(dag_run)
            .where(and_(dag_run.c.dag_id == dag_id, dag_run.c.logical_date < before))
            .order_by(dag_run.c.logical_date.desc(), dag_run.c.id.desc())
            .limit(1)
        )
        if state is not None:
            query = query.where(dag_run.c.state == state.value)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else run_row(row)

    async def task_states(
        self, run_pk: int, task_ids: Sequence[str]
    ) -> list[tuple[str, int, TaskState]]:
        """(task_id, map_index, state) of the run's instances of ``task_ids``."""
        query = select(_ti.task_id, _ti.map_index, _ti.state).where(
            and_(_ti.dag_run_id == run_pk, _ti.task_id.in_(list(task_ids)))
        )
        async with connect(self.engine) as conn:
            return [(t, int(i), TaskState(s)) for t, i, s in await conn.execute(query)]

    async def ran_before(self, dag_id: str, task_id: str, before: datetime) -> bool:
        """Has any run of the DAG with an earlier logical date an instance of the task?"""
        query = (
            select(_ti.id)
            .select_from(task_instance.join(dag_run, dag_run.c.id == _ti.dag_run_id))
            .where(
                and_(
                    dag_run.c.dag_id == dag_id,
                    dag_run.c.logical_date < before,
                    _ti.task_id == task_id,
                )
            )
            .limit(1)
        )
        async with connect(self.engine) as conn:
            return (await conn.execute(query)).first() is not None
