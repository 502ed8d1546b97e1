"""``GET /ui/stream/dags``: the DAG list's live updates (server-sent events).

Every ~second the stream reads the watched DAGs' last runs (one query) and sends
``event: dags`` with ``{"dags": [{"dag_id", "last_runs": [DagRunBrief, newest first]}]}``
for the DAGs whose runs changed since the last event (the first event: all of them).
A comment line every 15 s keeps proxies from closing an idle stream. The generator
ends when the client goes away (Starlette cancels it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse

from airloop.api.deps import StoreDep, ViewerDep
from airloop.api.models import dag_run_brief
from airloop.api.params import refuse_unknown_params
from airloop.store.reads import Reads
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

router = APIRouter()

TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
MAX_DAGS = 1000
RUNS_PER_DAG = 10


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def dag_events(
    store: Store, dag_ids: Sequence[str] | None, tick: float = TICK_SECONDS
) -> AsyncIterator[str]:
    """The stream's text: ``dags`` events for changes, keep-alive comments between."""
    seen: dict[str, list[dict[str, Any]]] = {}
    reads = Reads(store)
    quiet_since = time.monotonic()
    while True:
        ids = list(dag_ids) if dag_ids is not None else sorted(await ServiceStore(store).paused())
        runs = await reads.last_runs(ids[:MAX_DAGS], RUNS_PER_DAG)
        changed = []
        for dag_id, briefs in runs.items():
            now = [dag_run_brief(r).model_dump(mode="json") for r in briefs]
            if seen.get(dag_id) != now:
                seen[dag_id] = now
                changed.append({"dag_id": dag_id, "last_runs": now})
        if changed:
            yield _event("dags", {"dags": changed})
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(tick)


@router.get("/ui/stream/dags")
async def stream_dags(request: Request, user: ViewerDep, store: StoreDep) -> StreamingResponse:
    """``?dag_ids=a,b,c`` (the DAGs on the page; at most 1000) or every DAG."""
    refuse_unknown_params(request, ("dag_ids",), "stream")
    raw = request.query_params.get("dag_ids")
    dag_ids = None if raw is None else [d for d in raw.split(",") if d]
    if dag_ids is not None and len(dag_ids) > MAX_DAGS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"dag_ids: at most {MAX_DAGS} DAGs, got {len(dag_ids)}"
        )
    return StreamingResponse(
        dag_events(store, dag_ids),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
