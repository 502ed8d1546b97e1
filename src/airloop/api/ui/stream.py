"""UI: live updates for the DAG and run pages, by server-sent events.

``GET /ui/stream/dags/{dag_id}?runs=a,b``: one stream per page. Every ``interval``
seconds it asks the store what changed since the last tick (task instances by
``updated_at``, through the index ``ix_task_instance_dag_run_id_updated_at``, and the
runs' states) and sends only what differs from what this stream sent before
(``event: cells``, ``data: {"runs": [...], "cells": [...], "newer_runs": n}``;
``newer_runs`` counts the DAG's runs newer than the newest followed, so a grid can
offer to show them). The first tick sends
everything, so a change between the page's render and the stream's start is not lost.
A comment line keeps idle connections open every ``keepalive`` seconds. The generator
ends when the client goes away (Starlette cancels it; it also checks each tick)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse

from airloop.api.deps import StoreDep, ViewerDep
from airloop.api.params import refuse_unknown_params
from airloop.api.ui.serialize import cell_json, run_json
from airloop.store.runs import Store
from airloop.store.ui_reads import changed_since

router = APIRouter()

#: Runs one stream may follow (a grid page shows 25).
MAX_RUNS = 100
#: Rows committed late with an earlier updated_at (a long transaction, another
#: process's clock) are still seen: each tick looks back this far, and only cells whose
#: counts differ from what was sent go out.
OVERLAP = timedelta(seconds=5)


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _run_key(run: Any) -> tuple[Any, ...]:
    return (run.state, run.end_date, run.note, run.start_date)


async def cell_events(
    store: Store,
    dag_id: str,
    run_ids: list[str],
    *,
    disconnected: Callable[[], Awaitable[bool]],
    interval: float = 1.0,
    keepalive: float = 15.0,
) -> AsyncIterator[str]:
    """The stream's text: ``cells`` events with what changed, keep-alive comments."""
    sent_cells: dict[tuple[str, str], dict[str, int]] = {}
    sent_runs: dict[str, tuple[Any, ...]] = {}
    since: datetime | None = None
    newer = 0
    quiet = 0.0
    yield f"retry: {int(interval * 2000)}\n\n"
    while True:
        changes = await changed_since(
            store, dag_id, run_ids, None if since is None else since - OVERLAP
        )
        run_ids_by_pk = {r.id: r.run_id for r in changes.runs}
        runs = [r for r in changes.runs if sent_runs.get(r.run_id) != _run_key(r)]
        cells = [
            (run_ids_by_pk[c.run_pk], c)
            for c in changes.cells
            if sent_cells.get((run_ids_by_pk[c.run_pk], c.task_id)) != c.counts
        ]
        for r in runs:
            sent_runs[r.run_id] = _run_key(r)
        for run_id, c in cells:
            sent_cells[(run_id, c.task_id)] = c.counts
        since = changes.until or since or datetime.now(UTC)
        if runs or cells or changes.newer != newer:
            newer = changes.newer
            data = {
                "runs": [run_json(r) for r in runs],
                "cells": [cell_json(run_id, c) for run_id, c in cells],
                "newer_runs": newer,
            }
            yield _event("cells", data)
            quiet = 0.0
        elif quiet >= keepalive:
            yield ": keep-alive\n\n"
            quiet = 0.0
        if await disconnected():
            return
        await asyncio.sleep(interval)
        quiet += interval


@router.get("/ui/stream/dags/{dag_id}")
async def dag_stream(
    request: Request, dag_id: str, store: StoreDep, user: ViewerDep, runs: str = ""
) -> StreamingResponse:
    """Server-sent events: the cells and run states of these runs that change."""
    refuse_unknown_params(request, ("runs",), "stream")
    run_ids = list(dict.fromkeys(r for r in runs.split(",") if r))
    if len(run_ids) > MAX_RUNS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"runs names {len(run_ids)} runs; one stream follows at most {MAX_RUNS}",
        )
    return StreamingResponse(
        cell_events(store, dag_id, run_ids, disconnected=request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
