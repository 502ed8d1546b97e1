"""UI: a run's page (its Gantt chart) and a mapped task's instances table (keyset
pages, filtered by state, sorted by any column)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airloop.api.deps import StoreDep, ViewerDep
from airloop.api.ui.grid_model import Row, iso, overall_state, rows, single_state, summary
from airloop.api.ui.page_parts import (
    choice_param,
    dag_view,
    only,
    pathq,
    run_of,
    stream_url,
    ti_href,
)
from airloop.api.ui.serialize import run_json
from airloop.api.ui.templating import render
from airloop.core.masking import redact
from airloop.store.read_records import TaskInstanceFilter
from airloop.store.ti_reads import TI_ORDERS, TaskInstanceReads
from airloop.store.ui_reads import task_spans

router = APIRouter()

INSTANCES_PER_PAGE = 100
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


@dataclass(frozen=True, slots=True)
class GanttRow:
    row: Row
    counts: dict[str, int]
    total: int
    #: The unmapped instance's try number (0 for a mapped task).
    try_number: int
    state: str | None
    #: The bar's colour: the state, or for a mapped task the state of the whole.
    bar_state: str | None
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
    only(request)
    info = await dag_view(store, dag_id)
    run = await run_of(store, dag_id, run_id)
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
                bar_state=overall_state(counts) if mapped else single_state(counts),
                summary=summary(counts),
                href=ti_href(dag_id, run.run_id, row.id, None if mapped else -1),
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
        stream=stream_url(dag_id, [run.run_id]),
    )


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse)
async def mapped_page(
    request: Request, dag_id: str, run_id: str, task_id: str, store: StoreDep, user: ViewerDep
) -> Response:
    only(request, "state", "order_by", "cursor")
    state = choice_param(request, "state", TI_STATES)
    order = choice_param(request, "order_by", ORDERS) or "map_index"
    cursor = request.query_params.get("cursor") or None
    info = await dag_view(store, dag_id)
    run = await run_of(store, dag_id, run_id)
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
        return RedirectResponse(ti_href(dag_id, run_id, task_id, -1), status.HTTP_303_SEE_OTHER)
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
        ti_href=lambda m: ti_href(dag_id, run_id, task_id, m),
        stream=stream_url(dag_id, [run.run_id]),
    )
