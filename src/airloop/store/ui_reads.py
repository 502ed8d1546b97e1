"""Reads behind the run page and live updates that the API's reads (airloop.store.reads)
do not have: per-task spans for the Gantt chart and "what changed since" for the
stream. Every query is bounded: aggregates per (run, task), never one row per mapped
instance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from airloop.store.errors import connect
from airloop.store.read_records import GridCell
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow
from airloop.store.runs import Store, run_row
from airloop.store.schema import dag_run, task_instance

_ti = task_instance.c
_run = dag_run.c


@dataclass(frozen=True, slots=True)
class TaskSpan:
    """One task of a run for the Gantt chart: counts and the span of its instances."""

    task_id: str
    counts: dict[str, int]
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    #: The unmapped instance's try number (0 for a mapped task).
    try_number: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in some runs since a time: the runs (all of them, re-read: there are
    few) and the cells of the tasks whose instances were updated, recounted (cells name
    their run by primary key)."""

    runs: list[DagRunRow]
    cells: list[GridCell]
    #: The latest updated_at seen (or the ``since`` given when nothing changed).
    until: datetime | None
    #: How many of the DAG's runs are newer than the newest of those named.
    newer: int = 0


def _aware(value: datetime | None) -> datetime | None:
    # Aggregates (min/max) of a UtcDateTime column come back as the driver's naive UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


async def task_spans(store: Store, run_pk: int) -> list[TaskSpan]:
    """Per task of a run: counts per state and the span (first queued, first start,
    last end) of its instances. Two GROUP BY queries; no row per mapped instance."""
    spans = (
        select(
            _ti.task_id,
            func.min(_ti.queued_at),
            func.min(_ti.start_date),
            func.max(_ti.end_date),
            func.max(_ti.try_number),
        )
        .where(_ti.dag_run_id == run_pk)
        .group_by(_ti.task_id)
    )
    counts = (
        select(_ti.task_id, _ti.state, func.count())
        .where(_ti.dag_run_id == run_pk)
        .group_by(_ti.task_id, _ti.state)
    )
    async with connect(store.engine) as conn:
        by_task: dict[str, dict[str, int]] = {}
        for task_id, state, n in await conn.execute(counts):
            by_task.setdefault(task_id, {})[state] = int(n)
        return [
            TaskSpan(
                task_id, by_task.get(task_id, {}), _aware(q), _aware(s), _aware(e), int(t or 0)
            )
            for task_id, q, s, e, t in await conn.execute(spans)
        ]


async def changed_since(
    store: Store, dag_id: str, run_ids: Sequence[str], since: datetime | None
) -> Changes:
    """The runs named (re-read) and, recounted, the cells of the tasks with an instance
    updated at or after ``since`` in any of them (every cell when None). Reads through
    the index ``ix_task_instance_dag_run_id_updated_at``."""
    if not run_ids:
        return Changes([], [], since)
    async with connect(store.engine) as conn:
        rows = await conn.execute(
            select(dag_run).where(_run.dag_id == dag_id, _run.run_id.in_(list(run_ids)))
        )
        runs = [run_row(r) for r in rows]
        pks = [r.id for r in runs]
        if not pks:
            return Changes([], [], since)
        newer_query = select(func.count()).where(_run.dag_id == dag_id, _run.id > max(pks))
        newer = int((await conn.execute(newer_query)).scalar() or 0)
        until = since
        if since is None:
            latest = (
                await conn.execute(select(func.max(_ti.updated_at)).where(_ti.dag_run_id.in_(pks)))
            ).scalar()
            touched: dict[int, list[str]] | None = None
            until = _aware(latest)
        else:
            recent = (
                select(_ti.dag_run_id, _ti.task_id, func.max(_ti.updated_at))
                .where(_ti.dag_run_id.in_(pks), _ti.updated_at >= since)
                .group_by(_ti.dag_run_id, _ti.task_id)
            )
            touched = {}
            for pk, task_id, value in await conn.execute(recent):
                touched.setdefault(int(pk), []).append(task_id)
                value = _aware(value)
                if value is not None and (until is None or value > until):
                    until = value
            if not touched:
                return Changes(runs, [], until, newer)
    reads = Reads(store)
    if touched is None:
        cells = await reads.cells(pks)
    else:
        # Only the runs that changed, and only their changed tasks (usually one run).
        cells = [c for pk, tasks in touched.items() for c in await reads.cells([pk], tasks)]
    return Changes(runs, cells, until, newer)
