"""UI: a DAG's pages (grid, graph, runs, code, details), a run's page (Gantt) and a
mapped task's instances table. Server-rendered; the scripts only add the tooltip,
collapsing, live patches and the admin buttons."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airloop.api.confined_files import OutsideFolderError, read_dag_source
from airloop.api.deps import DagsFolderDep, StoreDep, ViewerDep
from airloop.api.lookups import dag_record_or_404, run_or_404
from airloop.api.params import refuse_unknown_params
from airloop.api.ui.graph_layout import layout
from airloop.api.ui.grid_html import grid_body
from airloop.api.ui.grid_model import Row, iso, rows, single_state, summary
from airloop.api.ui.serialize import run_json
from airloop.api.ui.templating import render, templates
from airloop.core.masking import redact
from airloop.dagbag.serialized import loads
from airloop.runtime import in_thread
from airloop.store.read_records import GridCell, TaskInstanceFilter
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow
from airloop.store.ti_reads import TI_ORDERS, TaskInstanceReads
from airloop.store.ui_reads import task_spans

router = APIRouter()

GRID_RUNS = 25
RUNS_PER_PAGE = 50
INSTANCES_PER_PAGE = 100
RUN_STATES = ("queued", "running", "success", "failed")
#: The instances table's sort orders (``-`` reverses).
ORDERS = (*TI_ORDERS, *(f"-{o}" for o in TI_ORDERS))
TI_STATES = (
    "none",
    "scheduled",
    "queued",
    "running",
    "success",
    "failed",
    "up_for_retry",
    "upstream_failed",
    "skipped",
    "removed",
)


def pathq(value: object) -> str:
    """A path segment, quoted (run ids hold ``:`` and ``+``)."""
    return quote(str(value), safe="")


templates.env.filters.setdefault("pathq", pathq)


def _only(request: Request, *known: str) -> None:
    """400 naming any query parameter this page does not take."""
    refuse_unknown_params(request, known, "page")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"query parameter {name} must be an integer, not {raw!r}"
        ) from None
    if not low <= value <= high:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"query parameter {name} must be {low}..{high}, not {value}",
        )
    return value


def _choice(request: Request, name: str, choices: Iterable[str]) -> str | None:
    raw = request.query_params.get(name) or None
    options = tuple(choices)
    if raw is not None and raw not in options:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"query parameter {name} must be one of {', '.join(options)}, not {raw!r}",
        )
    return raw


@dataclass(frozen=True, slots=True)
class DagView:
    """The DAG as the pages show it: its row and its stored structure (None until the
    scheduler has parsed the file once)."""

    dag_id: str
    fileloc: str
    is_paused: bool
    is_active: bool
    schedule: str | None
    structure: dict[str, Any] | None


async def _dag(store: Any, dag_id: str) -> DagView:
    info = await dag_record_or_404(Reads(store), dag_id)
    structure = None if info.serialized is None else dict(loads(info.serialized))
    return DagView(
        info.dag_id, info.fileloc, info.is_paused, info.is_active, info.schedule, structure
    )


async def _run(store: Any, dag_id: str, run_id: str) -> DagRunRow:
    return await run_or_404(Reads(store), dag_id, run_id)


def _stream_url(dag_id: str, run_ids: Iterable[str]) -> str:
    return f"/ui/stream/dags/{pathq(dag_id)}?" + urlencode({"runs": ",".join(run_ids)})


def _ti_href(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    base = f"/dags/{pathq(dag_id)}/runs/{pathq(run_id)}/tasks/{pathq(task_id)}"
    return base if map_index is None else f"{base}/{map_index}"


def _tab(request: Request, info: DagView, tab: str, **context: Any) -> HTMLResponse:
    structure: dict[str, Any] = info.structure or {}
    return render(
        request,
        f"dag_{tab}.html",
        dag=info,
        structure=structure,
        tab=tab,
        description=structure.get("description"),
        **context,
    )


@router.get("/dags/{dag_id}", response_class=HTMLResponse)
@router.get("/dags/{dag_id}/grid", response_class=HTMLResponse)
async def grid_page(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    _only(request, "before", "limit")
    limit = _int(request, "limit", GRID_RUNS, 1, 100)
    before = request.query_params.get("before") or None
    info = await _dag(store, dag_id)
    pivot = None if before is None else (await _run(store, dag_id, before)).id
    # One run more than shown tells whether there are older ones.
    data = await Reads(store).grid(dag_id, limit=limit + 1, before=pivot)
    has_older = len(data.runs) > limit
    runs = data.runs[1:] if has_older else data.runs
    run_ids = {r.id: r.run_id for r in runs}
    counts = {(run_ids[c.run_pk], c.task_id): c.counts for c in data.cells if c.run_pk in run_ids}
    task_rows = rows(info.structure, (task for _, task in counts))
    body = grid_body(dag_id, runs, task_rows, counts)
    older = None
    if has_older and runs:
        older = f"/dags/{pathq(dag_id)}/grid?" + urlencode({"before": runs[0].run_id})
    return _tab(
        request,
        info,
        "grid",
        runs=runs,
        body=body,
        older=older,
        older_page=before is not None,
        stream=_stream_url(dag_id, (r.run_id for r in runs)),
    )


@router.get("/dags/{dag_id}/graph", response_class=HTMLResponse)
async def graph_page(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    _only(request, "run_id")
    info = await _dag(store, dag_id)
    recent = (await Reads(store).runs(dag_id, order_by="-logical_date", limit=GRID_RUNS)).items
    run_id = request.query_params.get("run_id") or (recent[0].run_id if recent else None)
    cells: dict[str, GridCell] = {}
    selected: DagRunRow | None = None
    if run_id is not None:
        selected = await _run(store, dag_id, run_id)
        cells = {c.task_id: c for c in await Reads(store).cells([selected.id])}
    if selected is not None and all(r.run_id != selected.run_id for r in recent):
        recent.append(selected)
    shape = layout(info.structure or {"tasks": [], "edges": [], "task_group": {}})
    nodes = []
    for node in shape.nodes:
        cell = cells.get(node.task_id)
        counts = cell.counts if cell else {}
        nodes.append(
            {
                "node": node,
                "state": None if node.is_mapped else single_state(counts),
                "total": sum(counts.values()),
                "summary": summary(counts),
                "href": _ti_href(dag_id, run_id, node.task_id, None if node.is_mapped else -1)
                if run_id
                else None,
            }
        )
    return _tab(
        request,
        info,
        "graph",
        shape=shape,
        nodes=nodes,
        runs=recent,
        selected=selected,
        stream=_stream_url(dag_id, [run_id]) if run_id else None,
    )


@router.get("/dags/{dag_id}/runs", response_class=HTMLResponse)
async def runs_tab(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    _only(request, "state", "page")
    state = _choice(request, "state", RUN_STATES)
    page = _int(request, "page", 1, 1, 1_000_000)
    info = await _dag(store, dag_id)
    found = await Reads(store).runs(
        dag_id,
        state=state,
        order_by="-logical_date",
        limit=RUNS_PER_PAGE,
        offset=(page - 1) * RUNS_PER_PAGE,
    )
    items, total = found.items, found.total
    pages = max(1, -(-total // RUNS_PER_PAGE))

    def link(n: int) -> str:
        query = {"page": str(n), **({"state": state} if state else {})}
        return f"/dags/{pathq(dag_id)}/runs?" + urlencode(query)

    return _tab(
        request,
        info,
        "runs",
        items=items,
        total=total,
        state=state,
        states=RUN_STATES,
        page=page,
        pages=pages,
        prev=link(page - 1) if page > 1 else None,
        next=link(page + 1) if page < pages else None,
    )


@router.get("/dags/{dag_id}/code", response_class=HTMLResponse)
async def code_tab(
    request: Request, dag_id: str, store: StoreDep, dags_folder: DagsFolderDep, user: ViewerDep
) -> Response:
    _only(request)
    info = await _dag(store, dag_id)
    error = None
    lines: list[str] = []
    try:
        content = await in_thread(read_dag_source, info.fileloc, dags_folder)
        if content is None:
            error = f"cannot read {info.fileloc}: no such file"
        else:
            lines = content.splitlines()
    except OutsideFolderError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"cannot read {info.fileloc}: {exc.strerror or exc}"
    return _tab(request, info, "code", lines=lines, error=error)


@router.get("/dags/{dag_id}/details", response_class=HTMLResponse)
async def details_tab(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    _only(request)
    info = await _dag(store, dag_id)
    params = redact((info.structure or {}).get("params", {}))
    return _tab(request, info, "details", params=params)


@dataclass(frozen=True, slots=True)
class GanttRow:
    row: Row
    counts: dict[str, int]
    total: int
    #: The unmapped instance's try number (0 for a mapped task).
    try_number: int
    state: str | None
    summary: str
    href: str
    queued_at: str
    start_date: str
    end_date: str
    duration: str
    #: Percent of the run's span: waiting (queued -> start) and running (start -> end).
    wait_x: float
    wait_w: float
    run_x: float
    run_w: float


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


@router.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request, dag_id: str, run_id: str, store: StoreDep, user: ViewerDep
) -> Response:
    _only(request)
    info = await _dag(store, dag_id)
    run = await _run(store, dag_id, run_id)
    spans = {s.task_id: s for s in await task_spans(store, run.id)}
    now = datetime.now(UTC)
    times = [t for s in spans.values() for t in (s.queued_at, s.start_date) if t is not None]
    begin = min([*times, *([run.start_date] if run.start_date else [])], default=now)
    end = max(
        [
            *(s.end_date or now for s in spans.values() if s.start_date is not None),
            *([run.end_date] if run.end_date else []),
        ],
        default=now,
    )
    width = max((end - begin).total_seconds(), 1e-6)

    def pct(t: datetime | None) -> float:
        if t is None:
            return 0.0
        return round(min(max((t - begin).total_seconds() / width, 0.0), 1.0) * 100, 3)

    gantt: list[GanttRow | Row] = []
    for row in rows(info.structure, spans):
        if row.is_group:
            gantt.append(row)
            continue
        span = spans.get(row.id)
        counts = span.counts if span else {}
        mapped = row.is_mapped or sum(counts.values()) > 1
        q = span.queued_at if span else None
        s = span.start_date if span else None
        e = (span.end_date or (now if s else None)) if span else None
        wait_x = pct(q) if q and s else 0.0
        run_x = pct(s)
        gantt.append(
            GanttRow(
                row=row,
                counts=counts,
                total=sum(counts.values()),
                try_number=0 if mapped or span is None else span.try_number,
                state=None if mapped else single_state(counts),
                summary=summary(counts),
                href=_ti_href(dag_id, run.run_id, row.id, None if mapped else -1),
                queued_at=iso(q),
                start_date=iso(s),
                end_date=iso(span.end_date if span else None),
                duration=_duration(s, span.end_date if span else None),
                wait_x=wait_x,
                wait_w=round(run_x - wait_x, 3) if q and s else 0.0,
                run_x=run_x,
                run_w=round(pct(e) - run_x, 3) if s else 0.0,
            )
        )
    return render(
        request,
        "run.html",
        dag=info,
        run=run,
        conf=redact(run.params),
        run_data=run_json(run),
        gantt=gantt,
        begin=iso(begin),
        end=iso(end),
        total=_duration(begin, end),
        stream=_stream_url(dag_id, [run.run_id]),
    )


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse)
async def mapped_page(
    request: Request, dag_id: str, run_id: str, task_id: str, store: StoreDep, user: ViewerDep
) -> Response:
    _only(request, "state", "order_by", "cursor")
    state = _choice(request, "state", TI_STATES)
    order = _choice(request, "order_by", ORDERS) or "map_index"
    cursor = request.query_params.get("cursor") or None
    info = await _dag(store, dag_id)
    run = await _run(store, dag_id, run_id)
    tasks = {t["task_id"]: t for t in (info.structure or {}).get("tasks", [])}
    wanted = TaskInstanceFilter(dag_id=dag_id, run_id=run_id, task_id=task_id, state=state)
    try:
        page = await TaskInstanceReads(store).list(
            wanted, order_by=order, limit=INSTANCES_PER_PAGE, cursor=cursor
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    instances = [record.ti for record in page.items]
    mapped = bool(tasks.get(task_id, {}).get("is_mapped")) or any(
        ti.map_index >= 0 for ti in instances
    )
    if not mapped:
        if task_id not in tasks and not instances and state is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}",
            )
        return RedirectResponse(_ti_href(dag_id, run_id, task_id, -1), status.HTTP_303_SEE_OTHER)
    base = f"/dags/{pathq(dag_id)}/runs/{pathq(run_id)}/tasks/{pathq(task_id)}"

    def link(**query: str | None) -> str:
        values = {"state": state, "order_by": order if order != "map_index" else None}
        values.update(query)
        kept = {k: v for k, v in values.items() if v}
        return base + ("?" + urlencode(kept) if kept else "")

    sorts = {}
    for name in ("map_index", "state", "start_date", "duration"):
        flipped = f"-{name}" if order == name else name
        sorts[name] = link(order_by=flipped, cursor=None)
    spans = {s.task_id: s for s in await task_spans(store, run.id)}
    counts = spans[task_id].counts if task_id in spans else {}
    return render(
        request,
        "mapped.html",
        dag=info,
        run=run,
        task_id=task_id,
        page=page,
        instances=instances,
        state=state,
        states=TI_STATES,
        order=order,
        sorts=sorts,
        counts=counts,
        summary=summary(counts),
        first=link(cursor=None) if cursor else None,
        next=link(cursor=page.next_cursor) if page.next_cursor else None,
        filter_action=base,
        ti_href=lambda m: _ti_href(dag_id, run_id, task_id, m),
        stream=_stream_url(dag_id, [run.run_id]),
    )
