"""What the DAG and run pages share: query parameter checks, the DAG and run a path
names (the API's 404s), and the links between pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request, status

from airloop.api.lookups import dag_record_or_404, run_or_404
from airloop.api.params import refuse_unknown_params
from airloop.api.ui.templating import templates
from airloop.dagbag.serialized import loads
from airloop.runtime import in_thread
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow
from airloop.store.runs import Store


def pathq(value: object) -> str:
    """A path segment, quoted (run ids hold ``:`` and ``+``)."""
    return quote(str(value), safe="")


templates.env.filters.setdefault("pathq", pathq)


def only(request: Request, *known: str) -> None:
    """400 naming any query parameter this page does not take."""
    refuse_unknown_params(request, known, "page")


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` (``default`` when absent); 400 otherwise."""
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


def choice_param(request: Request, name: str, choices: Iterable[str]) -> str | None:
    """The query parameter ``name`` (None when absent), one of ``choices``; 400 otherwise."""
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


async def dag_view(store: Store, dag_id: str) -> DagView:
    """The DAG (404 naming it); its structure parsed off the event loop (a wide DAG's
    JSON is megabytes)."""
    info = await dag_record_or_404(Reads(store), dag_id)
    structure = None
    if info.serialized is not None:
        structure = dict(await in_thread(loads, info.serialized))
    return DagView(
        info.dag_id, info.fileloc, info.is_paused, info.is_active, info.schedule, structure
    )


async def run_of(store: Store, dag_id: str, run_id: str) -> DagRunRow:
    """The run (404 naming it, or its DAG)."""
    return await run_or_404(Reads(store), dag_id, run_id)


def stream_url(dag_id: str, run_ids: Iterable[str]) -> str:
    """The live stream of these runs' cells."""
    return f"/ui/stream/dags/{pathq(dag_id)}?" + urlencode({"runs": ",".join(run_ids)})


def ti_href(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """A task's page: its mapped instances (``map_index`` None) or one instance."""
    base = f"/dags/{pathq(dag_id)}/runs/{pathq(run_id)}/tasks/{pathq(task_id)}"
    return base if map_index is None else f"{base}/{map_index}"
