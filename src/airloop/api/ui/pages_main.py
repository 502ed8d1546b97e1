"""UI pages outside the DAG page: home, the DAG list, the trigger form, the task
instance page and the admin pages (pools, connections, variables).

Pages read through the JSON API in process (``api_client.api_get``) and render
server-side; their scripts change things through the same API (``airloop.api()``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from airloop.api.deps import current_user
from airloop.api.params import unknown_params
from airloop.api.ui.api_client import (
    ApiCallError,
    api_get,
    api_get_optional,
    gather_owned,
    items,
)
from airloop.api.ui.param_fields import param_fields
from airloop.api.ui.templating import render

#: Behind the authentication middleware; the dependency says so again (any user).
router = APIRouter(dependencies=[Depends(current_user)])

DAGS_PER_PAGE = 50
RUN_STATES = ("queued", "running", "success", "failed")


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
async def home(request: Request) -> HTMLResponse:
    if complaint := _check_query(request, set()):
        return _error(request, 400, complaint)
    try:
        health, errors, dags = await gather_owned(
            api_get(request, "/health"),
            api_get(request, "/importErrors", limit=1000),
            api_get(request, "/dags", limit=1000),
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
async def dag_list(request: Request) -> HTMLResponse:
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
        page = await api_get(request, "/dags", limit=DAGS_PER_PAGE, offset=offset, **query)
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
async def trigger_form(request: Request, dag_id: str) -> HTMLResponse:
    if complaint := _check_query(request, set()):
        return _error(request, 400, complaint)
    if not _is_admin(request):
        return _error(request, 403, "triggering a DAG needs the admin role")
    try:
        dag = await api_get(request, f"/dags/{seg(dag_id)}")
    except ApiCallError as exc:
        return _error(request, exc.status_code, exc.detail)
    return render(request, "trigger.html", dag=dag, fields=param_fields(dag.get("params") or {}))


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/{map_index}", response_class=HTMLResponse)
async def task_instance(
    request: Request, dag_id: str, run_id: str, task_id: str, map_index: int
) -> HTMLResponse:
    if complaint := _check_query(request, {"try"}):
        return _error(request, 400, complaint)
    base = f"/dags/{seg(dag_id)}/dagRuns/{seg(run_id)}/taskInstances/{seg(task_id)}"
    try:
        ti = await api_get(request, f"{base}/{map_index}" if map_index >= 0 else base)
        tries, xcoms, rendered = await gather_owned(
            api_get(request, f"{base}/tries", map_index=map_index),
            api_get(request, f"{base}/xcomEntries", map_index=map_index),
            api_get_optional(request, f"{base}/renderedFields", map_index=map_index),
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
