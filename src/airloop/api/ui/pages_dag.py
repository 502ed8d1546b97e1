"""UI: a DAG's pages (grid, graph, runs, code, details); a run's page and a mapped
task's instances are in ``pages_run``. Server-rendered; the scripts only add the
tooltip, collapsing, live patches and the admin buttons."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from airloop.api.confined_files import OutsideFolderError, read_dag_source
from airloop.api.deps import DagsFolderDep, StoreDep, ViewerDep
from airloop.api.ui.graph_layout import layout
from airloop.api.ui.grid_html import grid_body
from airloop.api.ui.grid_model import rows, single_state, summary
from airloop.api.ui.page_parts import (
    DagView,
    choice_param,
    dag_view,
    int_param,
    only,
    pathq,
    run_of,
    stream_url,
    ti_href,
)
from airloop.api.ui.templating import render
from airloop.core.masking import redact
from airloop.runtime import in_thread
from airloop.store.read_records import GridCell
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow

router = APIRouter()

GRID_RUNS = 25
RUNS_PER_PAGE = 50
RUN_STATES = ("queued", "running", "success", "failed")


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
    only(request, "before", "limit")
    limit = int_param(request, "limit", GRID_RUNS, 1, 100)
    before = request.query_params.get("before") or None
    info = await dag_view(store, dag_id)
    pivot = None if before is None else (await run_of(store, dag_id, before)).id
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
        stream=stream_url(dag_id, (r.run_id for r in runs)),
    )


@router.get("/dags/{dag_id}/graph", response_class=HTMLResponse)
async def graph_page(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    only(request, "run_id")
    info = await dag_view(store, dag_id)
    recent = (await Reads(store).runs(dag_id, order_by="-logical_date", limit=GRID_RUNS)).items
    run_id = request.query_params.get("run_id") or (recent[0].run_id if recent else None)
    cells: dict[str, GridCell] = {}
    selected: DagRunRow | None = None
    if run_id is not None:
        selected = await run_of(store, dag_id, run_id)
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
                "href": ti_href(dag_id, run_id, node.task_id, None if node.is_mapped else -1)
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
        stream=stream_url(dag_id, [run_id]) if run_id else None,
    )


@router.get("/dags/{dag_id}/runs", response_class=HTMLResponse)
async def runs_tab(request: Request, dag_id: str, store: StoreDep, user: ViewerDep) -> Response:
    only(request, "state", "page")
    state = choice_param(request, "state", RUN_STATES)
    page = int_param(request, "page", 1, 1, 1_000_000)
    info = await dag_view(store, dag_id)
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
    only(request)
    info = await dag_view(store, dag_id)
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
    only(request)
    info = await dag_view(store, dag_id)
    params = redact((info.structure or {}).get("params", {}))
    return _tab(request, info, "details", params=params)
