"""UI pages outside the DAG page: home, the DAG list, the trigger form, the task
instance page and the admin pages (pools, connections, variables).

Pages read through the JSON API's handlers in process (``api_client.api_call``) and
render server-side; their scripts change things through the same API (``airloop.api()``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from airloop.api.deps import current_user
from airloop.api.params import Pagination, unknown_params
from airloop.api.routes import dags, monitor, task_instances
from airloop.api.ui.api_client import (
    ApiCallError,
    PageContext,
    api_call,
    api_call_optional,
    gather_owned,
    items,
    page_context,
)
from airloop.api.ui.param_fields import param_fields
from airloop.api.ui.templating import render
from airloop.core.states import DagRunState

#: Behind the authentication middleware; the dependency says so again (any user).
router = APIRouter(dependencies=[Depends(current_user)])

PageCtx = Annotated[PageContext, Depends(page_context)]

DAGS_PER_PAGE = 50
RUN_STATES = ("queued", "running", "success", "failed")


async def _dags(ctx: PageContext, page: Pagination, **filters: Any) -> Any:
    """The DAG list's answer (``GET /dags``) for these filters."""
    given = {"search": None, "tags": None, "paused": None, "active": None, "last_state": None}
    return await api_call(
        dags.list_dags, user=ctx.user, reads=ctx.reads, page=page, **(given | filters)
    )


def seg(value: str) -> str:
    """One URL path segment (run ids hold ``:`` and ``+``)."""
    return quote(value, safe="")


def _error(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, message=message)


def _check_query(request: Request, allowed: set[str]) -> str | None:
    """The one-line complaint about query parameters this page does not take, or None."""
    return unknown_params(request, allowed, "page")


def _is_admin(request: Request) -> bool:
    user = getattr(request.state, "user", None)
    return bool(user is not None and user.is_admin)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiCallError(400, f"query parameter {name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ApiCallError(400, f"query parameter {name}: {value} is not within {low}..{high}")
    return value


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: PageCtx) -> HTMLResponse:
    if complaint := _check_query(request, set()):
        return _error(request, 400, complaint)
    try:
        health, errors, dags = await gather_owned(
            api_call(
                monitor.health,
                request=request,
                service=ctx.service,
                settings=ctx.settings,
            ),
            api_call(
                monitor.import_errors, user=ctx.user, service=ctx.service, page=ctx.page(1000)
            ),
            _dags(ctx, ctx.page(1000)),
        )
    except ApiCallError as exc:
        return _error(request, exc.status_code, exc.detail)
    rows = items(dags)
    error_rows = items(errors)
    return render(
        request,
        "home.html",
        health=health,
        import_errors=error_rows,
        import_errors_total=errors["total"] if isinstance(errors, dict) else len(error_rows),
        dag_total=dags["total"],
        running_runs=sum(d.get("running_runs", 0) for d in rows),
        failed_runs=sum(d.get("failed_runs", 0) for d in rows),
        failing_dags=[d for d in rows if d["last_runs"] and d["last_runs"][0]["state"] == "failed"],
        paused=sum(1 for d in rows if d["is_paused"]),
    )


@router.get("/dags", response_class=HTMLResponse)
async def dag_list(request: Request, ctx: PageCtx) -> HTMLResponse:
    if complaint := _check_query(request, {"search", "tags", "last_state", "paused", "offset"}):
        return _error(request, 400, complaint)
    q = request.query_params
    query: dict[str, Any] = {
        "search": q.get("search") or None,
        "tags": [t for t in q.getlist("tags") if t],
        "last_state": q.get("last_state") or None,
        "paused": q.get("paused") or None,
    }
    try:
        offset = _int(request, "offset", 0, 0, 10**9)
        if query["last_state"] not in (None, *RUN_STATES):
            raise ApiCallError(400, f"last_state must be one of {', '.join(RUN_STATES)}")
        if query["paused"] not in (None, "true", "false"):
            raise ApiCallError(400, "paused must be true or false")
        page = await _dags(
            ctx,
            ctx.page(DAGS_PER_PAGE, offset),
            search=query["search"],
            tags=query["tags"] or None,
            paused=None if query["paused"] is None else query["paused"] == "true",
            last_state=None if query["last_state"] is None else DagRunState(query["last_state"]),
        )
    except ApiCallError as exc:
        return _error(request, exc.status_code, exc.detail)
    return render(
        request,
        "dags.html",
        dags=page["items"],
        total=page["total"],
        offset=offset,
        limit=DAGS_PER_PAGE,
        query=query,
        states=RUN_STATES,
        is_admin=_is_admin(request),
    )


@router.get("/dags/{dag_id}/trigger", response_class=HTMLResponse)
async def trigger_form(request: Request, dag_id: str, ctx: PageCtx) -> HTMLResponse:
    if complaint := _check_query(request, set()):
        return _error(request, 400, complaint)
    if not _is_admin(request):
        return _error(request, 403, "triggering a DAG needs the admin role")
    try:
        dag = await api_call(dags.get_dag, dag_id=dag_id, user=ctx.user, reads=ctx.reads)
    except ApiCallError as exc:
        return _error(request, exc.status_code, exc.detail)
    return render(request, "trigger.html", dag=dag, fields=param_fields(dag.get("params") or {}))


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/{map_index}", response_class=HTMLResponse)
async def task_instance(
    request: Request, dag_id: str, run_id: str, task_id: str, map_index: int, ctx: PageCtx
) -> HTMLResponse:
    if complaint := _check_query(request, {"try"}):
        return _error(request, 400, complaint)
    base = f"/dags/{seg(dag_id)}/dagRuns/{seg(run_id)}/taskInstances/{seg(task_id)}"
    try:
        names = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "user": ctx.user}
        ti = await api_call(
            task_instances.get_mapped_task_instance,
            **names,
            map_index=map_index,
            store=ctx.store,
        )
        tries, xcoms, rendered = await gather_owned(
            api_call(
                task_instances.list_tries,
                **names,
                store=ctx.store,
                reads=ctx.reads,
                settings=ctx.settings,
                map_index=map_index,
            ),
            api_call(
                task_instances.list_xcoms,
                **names,
                store=ctx.store,
                reads=ctx.reads,
                map_index=map_index,
            ),
            api_call_optional(
                task_instances.get_rendered_fields,
                **names,
                store=ctx.store,
                map_index=map_index,
                try_number=None,
            ),
        )
        chosen = _int(request, "try", ti["try_number"], 0, 10**6)
    except ApiCallError as exc:
        return _error(request, exc.status_code, exc.detail)
    return render(
        request,
        "task_instance.html",
        ti=ti,
        tries=items(tries),
        chosen_try=chosen,
        xcoms=items(xcoms),
        rendered=rendered,
        is_admin=_is_admin(request),
        api_base="/api/v1" + base,
        page_data={
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "try_number": chosen,
            "logs": {str(t["try_number"]): t["path_exists"] for t in items(tries)},
            "state": ti["state"],
            "api_base": "/api/v1" + base,
            "dag_api": f"/api/v1/dags/{seg(dag_id)}",
        },
    )
