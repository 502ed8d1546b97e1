"""What the HTTP API reads: DAGs with their latest runs, runs, the grid's counts, and
one task instance's tries, XComs and log files. A few queries per page whatever its
size (no query per DAG or per run); task instance lists live in ``ti_reads``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.sql import Select

from airloop.core.states import DagRunState
from airloop.runtime import in_thread
from airloop.store.errors import connect
from airloop.store.read_records import (
    DagOverview,
    DagRecord,
    Grid,
    GridCell,
    LogFile,
    Page,
    RunBrief,
    XComEntry,
)
from airloop.store.records import DagRunRow
from airloop.store.runs import Store, run_row
from airloop.store.schema import dag as dag_table
from airloop.store.schema import dag_run, serialized_dag, task_instance, task_log, xcom

#: How many of a DAG's newest runs the DAG list shows.
LAST_RUNS = 10
#: Orders a run list accepts (``-`` for descending).
RUN_ORDERS = ("run_id", "logical_date", "start_date", "end_date", "created_at", "state")

_BRIEF_FIELDS = tuple(RunBrief.__dataclass_fields__)

_d = dag_table.c
_r = dag_run.c
_s = serialized_dag.c
_ti = task_instance.c


def _aware(value: datetime | None) -> datetime | None:
    """An aggregate (max) of a UtcDateTime column comes back as the driver's naive UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _dag_record(row: Any) -> DagRecord:
    return DagRecord(
        dag_id=row.dag_id,
        fileloc=row.fileloc,
        is_paused=bool(row.is_paused),
        is_active=bool(row.is_active),
        schedule=row.schedule,
        last_parsed=row.last_parsed,
        serialized=row.data,
    )


def _run_from(mapping: Any) -> DagRunRow:
    values = {k: mapping[k] for k in DagRunRow.__dataclass_fields__}
    values["state"] = DagRunState(values["state"])
    return DagRunRow(**values)


def _has_tags(data: str | None, tags: Sequence[str]) -> bool:
    if data is None:
        return False
    have = json.loads(data).get("tags") or []
    return all(t in have for t in tags)


def run_order(order_by: str) -> list[ColumnElement[Any]]:
    """ORDER BY for a run list (ValueError naming the choices for an unknown one);
    NULLs last both ways on every backend, the primary key breaks ties."""
    desc = order_by.startswith("-")
    name = order_by.lstrip("-")
    if name not in RUN_ORDERS:
        raise ValueError(
            f"order_by {order_by!r} is not one of {', '.join(RUN_ORDERS)} (prefix - to reverse)"
        )
    column = _r[name]
    nulls_last = case((column.is_(None), 1), else_=0)
    if desc:
        return [nulls_last, column.desc(), _r.id.desc()]
    return [nulls_last, column.asc(), _r.id.asc()]


class Reads:
    """The API's reads over a store's engine (its own pool in ``api-server``)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    # -- DAGs -------------------------------------------------------------------------

    def _dag_query(
        self,
        *,
        search: str | None,
        paused: bool | None,
        active: bool | None,
        last_state: str | None,
        tags: Sequence[str],
    ) -> Select[Any]:
        query = select(
            _d.dag_id,
            _d.fileloc,
            _d.is_paused,
            _d.is_active,
            _d.schedule,
            _d.last_parsed,
            _s.data,
        ).select_from(dag_table.outerjoin(serialized_dag, _s.dag_id == _d.dag_id))
        if search:
            query = query.where(func.lower(_d.dag_id).contains(search.lower(), autoescape=True))
        if paused is not None:
            query = query.where(_d.is_paused == paused)
        if active is not None:
            query = query.where(_d.is_active == active)
        if last_state is not None:
            newest = select(func.max(_r.id)).group_by(_r.dag_id)
            query = query.where(
                _d.dag_id.in_(select(_r.dag_id).where(_r.id.in_(newest), _r.state == last_state))
            )
        for tag in tags:  # narrowed in SQL, confirmed on the parsed tags
            query = query.where(_s.data.contains(json.dumps(tag), autoescape=True))
        return query

    async def dags(
        self,
        *,
        search: str | None = None,
        paused: bool | None = None,
        active: bool | None = None,
        last_state: str | None = None,
        tags: Sequence[str] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> Page[DagOverview]:
        """DAGs by dag_id, with what the DAG list shows of each: five queries a page."""
        query = self._dag_query(
            search=search, paused=paused, active=active, last_state=last_state, tags=tags
        )
        async with connect(self.engine) as conn:
            if tags:
                every = list(await conn.execute(query.order_by(_d.dag_id)))
                # Parsing every DAG's stored JSON is CPU work: off the event loop.
                rows = await in_thread(lambda: [r for r in every if _has_tags(r.data, tags)])
                total = len(rows)
                rows = rows[offset : offset + limit]
            else:
                count = select(func.count()).select_from(query.subquery())
                total = int((await conn.execute(count)).scalar() or 0)
                page = query.order_by(_d.dag_id).limit(limit).offset(offset)
                rows = list(await conn.execute(page))
            records = [_dag_record(r) for r in rows]
            ids = [r.dag_id for r in records]
            if not ids:
                return Page([], total)
            last_runs = await self._last_runs(conn, ids)
            counts = await self._run_counts(conn, ids)
            interval_ends = await self._interval_ends(conn, ids)
        items = [
            DagOverview(
                dag=record,
                last_runs=last_runs.get(record.dag_id, []),
                running_runs=counts.get((record.dag_id, DagRunState.RUNNING.value), 0),
                failed_runs=counts.get((record.dag_id, DagRunState.FAILED.value), 0),
                last_interval_end=interval_ends.get(record.dag_id),
            )
            for record in records
        ]
        return Page(items, total)

    async def dag(self, dag_id: str) -> DagOverview | None:
        query = self._dag_query(
            search=None, paused=None, active=None, last_state=None, tags=()
        ).where(_d.dag_id == dag_id)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            last_runs = await self._last_runs(conn, [dag_id])
            counts = await self._run_counts(conn, [dag_id])
            interval_ends = await self._interval_ends(conn, [dag_id])
        return DagOverview(
            dag=_dag_record(row),
            last_runs=last_runs.get(dag_id, []),
            running_runs=counts.get((dag_id, DagRunState.RUNNING.value), 0),
            failed_runs=counts.get((dag_id, DagRunState.FAILED.value), 0),
            last_interval_end=interval_ends.get(dag_id),
        )

    async def dag_record(self, dag_id: str) -> DagRecord | None:
        """The DAG's row and structure alone (one query)."""
        query = self._dag_query(
            search=None, paused=None, active=None, last_state=None, tags=()
        ).where(_d.dag_id == dag_id)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _dag_record(row)

    async def last_runs(
        self, dag_ids: Sequence[str], per_dag: int = LAST_RUNS
    ) -> dict[str, list[RunBrief]]:
        """Each of ``dag_ids``'s newest ``per_dag`` runs, newest first, in one query
        (a DAG without runs maps to an empty list). The DAG list's live stream."""
        async with connect(self.engine) as conn:
            found = await self._last_runs(conn, list(dag_ids), per_dag)
        return {dag_id: found.get(dag_id, []) for dag_id in dag_ids}

    @staticmethod
    async def _last_runs(
        conn: Any, dag_ids: list[str], per_dag: int = LAST_RUNS
    ) -> dict[str, list[RunBrief]]:
        """Each DAG's newest runs, newest first: one window-function query."""
        if not dag_ids:
            return {}
        number = func.row_number().over(partition_by=_r.dag_id, order_by=_r.id.desc()).label("rn")
        columns = (_r.dag_id, _r.id, *(getattr(_r, f) for f in _BRIEF_FIELDS if f != "dag_id"))
        ranked = select(*columns, number).where(_r.dag_id.in_(dag_ids)).subquery()
        query = (
            select(ranked)
            .where(ranked.c.rn <= per_dag)
            .order_by(ranked.c.dag_id, ranked.c.id.desc())
        )
        out: dict[str, list[RunBrief]] = {}
        for row in (await conn.execute(query)).mappings():
            values = {f: row[f] for f in _BRIEF_FIELDS}
            values["state"] = DagRunState(values["state"])
            out.setdefault(row["dag_id"], []).append(RunBrief(**values))
        return out

    @staticmethod
    async def _run_counts(conn: Any, dag_ids: list[str]) -> dict[tuple[str, str], int]:
        states = [DagRunState.RUNNING.value, DagRunState.FAILED.value]
        query = (
            select(_r.dag_id, _r.state, func.count())
            .where(_r.dag_id.in_(dag_ids), _r.state.in_(states))
            .group_by(_r.dag_id, _r.state)
        )
        return {(d, s): int(n) for d, s, n in await conn.execute(query)}

    @staticmethod
    async def _interval_ends(conn: Any, dag_ids: list[str]) -> dict[str, datetime | None]:
        """The end of each DAG's last scheduled (or backfilled) interval, as the
        scheduler's ``last_interval_end``."""
        query = (
            select(_r.dag_id, func.max(_r.data_interval_end))
            .where(_r.dag_id.in_(dag_ids), _r.run_type.in_(["scheduled", "backfill"]))
            .group_by(_r.dag_id)
        )
        return {d: _aware(end) for d, end in await conn.execute(query)}

    async def dag_exists(self, dag_id: str) -> bool:
        query = select(_d.dag_id).where(_d.dag_id == dag_id)
        async with connect(self.engine) as conn:
            return (await conn.execute(query)).first() is not None

    # -- runs -------------------------------------------------------------------------

    async def runs(
        self,
        dag_id: str,
        *,
        state: str | None = None,
        run_type: str | None = None,
        order_by: str = "-logical_date",
        limit: int = 100,
        offset: int = 0,
    ) -> Page[DagRunRow]:
        order = run_order(order_by)
        where: list[ColumnElement[bool]] = [_r.dag_id == dag_id]
        if state is not None:
            where.append(_r.state == state)
        if run_type is not None:
            where.append(_r.run_type == run_type)
        query = select(dag_run).where(*where).order_by(*order).limit(limit).offset(offset)
        count = select(func.count()).select_from(dag_run).where(*where)
        async with connect(self.engine) as conn:
            total = int((await conn.execute(count)).scalar() or 0)
            items = [run_row(r) for r in await conn.execute(query)]
        return Page(items, total)

    async def run(self, dag_id: str, run_id: str) -> DagRunRow | None:
        query = select(dag_run).where(_r.dag_id == dag_id, _r.run_id == run_id)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else run_row(row)

    # -- the grid ---------------------------------------------------------------------

    async def grid(self, dag_id: str, *, limit: int = 25, before: int | None = None) -> Grid:
        """The DAG's ``limit`` newest runs (created before the run with primary key
        ``before``), oldest first, and per (run, task) the number of instances in each
        state: one ``GROUP BY dag_run_id, task_id, state`` (an index-only scan)."""
        query = select(dag_run).where(_r.dag_id == dag_id)
        if before is not None:
            query = query.where(_r.id < before)
        query = query.order_by(_r.id.desc()).limit(limit)
        async with connect(self.engine) as conn:
            runs = [run_row(r) for r in await conn.execute(query)]
            runs.reverse()
            if not runs:
                return Grid([], [])
            cells = await self._cells(conn, [r.id for r in runs], None)
        return Grid(runs, cells)

    async def cells(
        self, run_pks: Sequence[int], task_ids: Sequence[str] | None = None
    ) -> list[GridCell]:
        """The state counts of these runs' tasks (of ``task_ids`` only, when given):
        what a live grid asks again for the runs and tasks that changed."""
        if not run_pks:
            return []
        async with connect(self.engine) as conn:
            return await self._cells(conn, list(run_pks), task_ids)

    @staticmethod
    async def _cells(
        conn: Any, run_pks: list[int], task_ids: Sequence[str] | None
    ) -> list[GridCell]:
        query = select(_ti.dag_run_id, _ti.task_id, _ti.state, func.count()).where(
            _ti.dag_run_id.in_(run_pks)
        )
        if task_ids is not None:
            query = query.where(_ti.task_id.in_(list(task_ids)))
        query = query.group_by(_ti.dag_run_id, _ti.task_id, _ti.state).order_by(
            _ti.dag_run_id, _ti.task_id, _ti.state
        )
        counts: dict[tuple[int, str], dict[str, int]] = {}
        for run_pk, task_id, state, n in await conn.execute(query):
            counts.setdefault((int(run_pk), task_id), {})[state] = int(n)
        return [GridCell(pk, task, c) for (pk, task), c in counts.items()]

    # -- one task instance ------------------------------------------------------------

    async def log_files(self, run_pk: int, task_id: str, map_index: int) -> list[LogFile]:
        c = task_log.c
        query = (
            select(c.try_number, c.path)
            .where(c.dag_run_id == run_pk, c.task_id == task_id, c.map_index == map_index)
            .order_by(c.try_number, c.id)
        )
        async with connect(self.engine) as conn:
            files = {int(t): p for t, p in await conn.execute(query)}
        return [LogFile(t, p) for t, p in sorted(files.items())]

    async def xcoms(self, run_pk: int, task_id: str, map_index: int) -> list[XComEntry]:
        c = xcom.c
        query = (
            select(c.key, c.value, c.size)
            .where(c.dag_run_id == run_pk, c.task_id == task_id, c.map_index == map_index)
            .order_by(c.key)
        )
        async with connect(self.engine) as conn:
            return [XComEntry(k, v, int(n)) for k, v, n in await conn.execute(query)]

    async def ti_exists(self, run_pk: int, task_id: str, map_index: int) -> bool:
        query = select(_ti.id).where(
            and_(_ti.dag_run_id == run_pk, _ti.task_id == task_id, _ti.map_index == map_index)
        )
        async with connect(self.engine) as conn:
            return (await conn.execute(query)).first() is not None
