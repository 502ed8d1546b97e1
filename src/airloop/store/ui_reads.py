"""Reads behind the DAG and run pages: the grid aggregated in SQL, a page of one task's
instances by keyset, per-task spans for the Gantt chart, and "what changed since" for
live updates. Every query is bounded: counts per (run, task, state), never one row
per mapped instance, except the drill-down's page of at most ``limit`` rows."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from airloop.core.states import TaskState
from airloop.store.errors import connect
from airloop.store.records import DagRunRow, TaskInstanceRow
from airloop.store.runs import Store, run_row
from airloop.store.schema import dag as dag_table
from airloop.store.schema import dag_run, serialized_dag, task_instance

_ti = task_instance.c
_run = dag_run.c

TiOrder = Literal["map_index", "-map_index", "state", "-state", "start_date", "-start_date",
                  "duration", "-duration"]  # fmt: skip
TI_ORDERS: tuple[str, ...] = (
    "map_index",
    "-map_index",
    "state",
    "-state",
    "start_date",
    "-start_date",
    "duration",
    "-duration",
)


class BadCursor(ValueError):
    """A cursor this query did not hand out."""


@dataclass(frozen=True, slots=True)
class DagPageInfo:
    """What the DAG page header needs: the dag row and its stored structure."""

    dag_id: str
    fileloc: str
    is_paused: bool
    is_active: bool
    schedule: str | None
    #: The stored structure's JSON text (airloop.dagbag.serialized.loads reads it).
    structure_text: str | None


@dataclass(frozen=True, slots=True)
class GridCell:
    """One (run, task): instances counted per state."""

    run_id: str
    task_id: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Grid:
    runs: list[DagRunRow]  # oldest first
    cells: list[GridCell]
    #: A run older than the first shown exists ("load older").
    has_older: bool


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
class TiPage:
    items: list[TaskInstanceRow]
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in some runs since a time: the runs (all of them, re-read: there are
    few) and the cells whose instances were updated, recounted."""

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


def _ti_row(r: Any) -> TaskInstanceRow:
    return TaskInstanceRow(**{**r._mapping, "state": TaskState(r.state)})


async def dag_info(store: Store, dag_id: str) -> DagPageInfo | None:
    """The DAG (from the dag table) with its stored structure; None when unknown."""
    d = dag_table.c
    query = (
        select(d.dag_id, d.fileloc, d.is_paused, d.is_active, d.schedule, serialized_dag.c.data)
        .select_from(dag_table.outerjoin(serialized_dag, serialized_dag.c.dag_id == d.dag_id))
        .where(d.dag_id == dag_id)
    )
    async with connect(store.engine) as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return DagPageInfo(
        dag_id=row.dag_id,
        fileloc=row.fileloc,
        is_paused=bool(row.is_paused),
        is_active=bool(row.is_active),
        schedule=row.schedule,
        structure_text=row.data,
    )


async def find_run(store: Store, dag_id: str, run_id: str) -> DagRunRow | None:
    query = select(dag_run).where(_run.dag_id == dag_id, _run.run_id == run_id)
    async with connect(store.engine) as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else run_row(row)


async def _counts(conn: Any, where: ColumnElement[bool], run_ids: dict[int, str]) -> list[GridCell]:
    query = (
        select(_ti.dag_run_id, _ti.task_id, _ti.state, func.count())
        .where(where)
        .group_by(_ti.dag_run_id, _ti.task_id, _ti.state)
    )
    cells: dict[tuple[int, str], dict[str, int]] = {}
    for pk, task_id, state, n in await conn.execute(query):
        cells.setdefault((pk, task_id), {})[state] = int(n)
    return [GridCell(run_ids[pk], task_id, counts) for (pk, task_id), counts in cells.items()]


async def grid(store: Store, dag_id: str, *, limit: int = 25, before: str | None = None) -> Grid:
    """The newest ``limit`` runs (older than run ``before`` when given), oldest first,
    and their instances counted per (run, task, state) in one GROUP BY."""
    query = select(dag_run).where(_run.dag_id == dag_id)
    async with connect(store.engine) as conn:
        if before is not None:
            pivot = (
                await conn.execute(
                    select(_run.id).where(_run.dag_id == dag_id, _run.run_id == before)
                )
            ).scalar()
            if pivot is None:
                raise LookupError(f"DAG {dag_id!r} has no run {before!r}")
            query = query.where(_run.id < pivot)
        rows = list(await conn.execute(query.order_by(_run.id.desc()).limit(limit + 1)))
        has_older = len(rows) > limit
        runs = [run_row(r) for r in reversed(rows[:limit])]
        ids = {r.id: r.run_id for r in runs}
        cells = await _counts(conn, _ti.dag_run_id.in_(list(ids)), ids) if ids else []
    return Grid(runs, cells, has_older)


async def runs_page(
    store: Store, dag_id: str, *, state: str | None, limit: int, offset: int
) -> tuple[list[DagRunRow], int]:
    """A page of the DAG's runs, newest first, and how many match."""
    where = [_run.dag_id == dag_id]
    if state:
        where.append(_run.state == state)
    async with connect(store.engine) as conn:
        total = (await conn.execute(select(func.count()).where(*where))).scalar() or 0
        rows = await conn.execute(
            select(dag_run).where(*where).order_by(_run.id.desc()).limit(limit).offset(offset)
        )
        return [run_row(r) for r in rows], int(total)


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


def _encode(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, order: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except ValueError as exc:
        raise BadCursor(f"cursor {cursor!r} is not one this list handed out") from exc
    if not isinstance(values, list) or len(values) != 3 or values[0] != order:
        raise BadCursor(f"cursor {cursor!r} is not one this list (order_by={order}) handed out")
    if isinstance(values[1], str) and order.lstrip("-") == "start_date":
        values[1] = datetime.fromisoformat(values[1])
    return values


_SORT_COLUMNS = {
    "map_index": _ti.map_index,
    "state": _ti.state,
    "start_date": _ti.start_date,
    "duration": _ti.duration,
}


def _after(order: str, value: Any, map_index: int) -> ColumnElement[bool]:
    """Rows after (value, map_index) in ``order``; NULLs sort last in both directions."""
    name = order.lstrip("-")
    desc = order.startswith("-")
    mi = _ti.map_index
    if name == "map_index":
        return mi < map_index if desc else mi > map_index
    col = _SORT_COLUMNS[name]
    tie = mi < map_index if desc else mi > map_index
    if value is None:
        return and_(col.is_(None), tie)
    beyond = col < value if desc else col > value
    return or_(beyond, and_(col == value, tie), col.is_(None))


def _order_by(order: str) -> list[Any]:
    name = order.lstrip("-")
    desc = order.startswith("-")
    mi = _ti.map_index.desc() if desc else _ti.map_index.asc()
    if name == "map_index":
        return [mi]
    col = _SORT_COLUMNS[name]
    # NULLs last on every backend (SQLite and MySQL sort them first ascending).
    return [col.is_(None), col.desc() if desc else col.asc(), mi]


async def ti_page(
    store: Store,
    run_pk: int,
    task_id: str,
    *,
    state: str | None = None,
    order: str = "map_index",
    limit: int = 100,
    cursor: str | None = None,
) -> TiPage:
    """One page of a task's instances in a run, by keyset (never OFFSET)."""
    if order not in TI_ORDERS:
        raise ValueError(f"order_by must be one of {', '.join(TI_ORDERS)}, not {order!r}")
    where: list[ColumnElement[bool]] = [_ti.dag_run_id == run_pk, _ti.task_id == task_id]
    if state:
        where.append(_ti.state == state)
    page_where = list(where)
    if cursor:
        _, value, map_index = _decode(cursor, order)
        page_where.append(_after(order, value, int(map_index)))
    query = select(task_instance).where(*page_where).order_by(*_order_by(order)).limit(limit + 1)
    async with connect(store.engine) as conn:
        total = (await conn.execute(select(func.count()).where(*where))).scalar() or 0
        rows = [_ti_row(r) for r in await conn.execute(query)]
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        name = order.lstrip("-")
        value = None if name == "map_index" else getattr(last, name)
        if isinstance(value, TaskState):
            value = value.value
        next_cursor = _encode([order, value, last.map_index])
    return TiPage(items, int(total), next_cursor)


async def changed_since(
    store: Store, dag_id: str, run_ids: Sequence[str], since: datetime | None
) -> Changes:
    """The runs named (re-read) and the (run, task) cells with an instance updated at
    or after ``since`` (all cells when None), recounted. Reads through the index
    ``ix_task_instance_dag_run_id_updated_at``."""
    if not run_ids:
        return Changes([], [], since)
    async with connect(store.engine) as conn:
        rows = await conn.execute(
            select(dag_run).where(_run.dag_id == dag_id, _run.run_id.in_(list(run_ids)))
        )
        runs = [run_row(r) for r in rows]
        ids = {r.id: r.run_id for r in runs}
        if not ids:
            return Changes([], [], since)
        newer_query = select(func.count()).where(_run.dag_id == dag_id, _run.id > max(ids))
        newer = int((await conn.execute(newer_query)).scalar() or 0)
        touched: ColumnElement[bool] = _ti.dag_run_id.in_(list(ids))
        until = since
        if since is not None:
            recent = (
                select(_ti.dag_run_id, _ti.task_id, func.max(_ti.updated_at))
                .where(touched, _ti.updated_at >= since)
                .group_by(_ti.dag_run_id, _ti.task_id)
            )
            pairs = []
            for pk, task_id, latest in await conn.execute(recent):
                pairs.append((pk, task_id))
                latest = _aware(latest)
                if latest is not None and (until is None or latest > until):
                    until = latest
            if not pairs:
                return Changes(runs, [], until, newer)
            touched = tuple_(_ti.dag_run_id, _ti.task_id).in_(pairs)
        else:
            latest = (await conn.execute(select(func.max(_ti.updated_at)).where(touched))).scalar()
            until = _aware(latest)
        cells = await _counts(conn, touched, ids)
    return Changes(runs, cells, until, newer)
