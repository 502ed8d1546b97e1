"""/api/v1/.../taskInstances/{task_id}/logs/{try_number}: a try's log, by tail or byte
range, downloaded whole, or followed by server-sent events while the try runs.
Files are read off the event loop; every piece goes through the masker."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from airloop.api.confined_files import OutsideFolderError, confined
from airloop.api.deps import SettingsDep, StoreDep, ViewerDep
from airloop.api.log_files import CHUNK, ChunkReader, Piece, read_range, read_tail
from airloop.api.lookups import not_found, ti_or_404
from airloop.api.models import LogChunk
from airloop.api.params import KnownParams
from airloop.core.states import TaskState
from airloop.runtime import in_thread
from airloop.store.reads import Reads
from airloop.store.runs import Store

router = APIRouter(tags=["Logs"], dependencies=[KnownParams])

_PATH = "/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
#: The tail a log opens with when neither offset nor tail is given.
DEFAULT_TAIL = 65536
MAX_READ = 16 * 1024 * 1024
#: How often a followed log's file is looked at.
FOLLOW_INTERVAL = 0.5
_RUNNING = (TaskState.QUEUED, TaskState.RUNNING)

MapIndex = Annotated[int, Query(ge=-1, description="The mapped instance (-1: unmapped).")]


async def _locate(
    store: Store,
    logs_folder: Path,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
) -> tuple[str | None, bool]:
    """The try's log file (None: none recorded yet) and whether the try is running;
    403 for a recorded path outside the logs folder (never read)."""
    record = await ti_or_404(store, dag_id, run_id, task_id, map_index)
    ti = record.ti
    running = ti.try_number == try_number and ti.state in _RUNNING
    files = await Reads(store).log_files(ti.dag_run_id, task_id, map_index)
    path = next((f.path for f in files if f.try_number == try_number), None)
    if path is None and not running:
        raise not_found(f"log of try {try_number} of task {task_id!r} in run {run_id!r}")
    if path is not None:
        try:
            path = await in_thread(confined, path, logs_folder, "logs folder")
        except OutsideFolderError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    return path, running


async def _still_running(
    store: Store, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> bool:
    record = await ti_or_404(store, dag_id, run_id, task_id, map_index)
    return record.ti.try_number == try_number and record.ti.state in _RUNNING


def _gone(path: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"log file {path} not found")


@router.get(
    _PATH,
    response_model=LogChunk,
    responses={200: {"content": {"text/plain": {}}, "description": "download=true: the file"}},
)
async def get_log(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int,
    user: ViewerDep,
    store: StoreDep,
    settings: SettingsDep,
    map_index: MapIndex = -1,
    offset: Annotated[int | None, Query(ge=0, description="Read from this byte.")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_READ, description="Read at most this many bytes.")
    ] = None,
    tail: Annotated[
        int | None,
        Query(ge=1, le=MAX_READ, description="The last bytes, from a line start (default 65536)."),
    ] = None,
    download: Annotated[bool, Query(description="The whole file, as an attachment.")] = False,
) -> Response | LogChunk:
    if tail is not None and offset is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "give either tail or offset, not both")
    if limit is not None and offset is None and not download:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "limit goes with offset (for the end of the log: tail)"
        )
    if download and (tail is not None or offset is not None or limit is not None):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "download=true takes the whole file: no tail, offset or limit",
        )
    path, running = await _locate(
        store, settings.logs_path, dag_id, run_id, task_id, map_index, try_number
    )
    if download:
        return await _download(path, f"{dag_id}.{run_id}.{task_id}.{map_index}.{try_number}.log")
    if path is None:
        return LogChunk(content="", offset=0, next_offset=0, size=0, running=running)
    try:
        if offset is not None:
            piece = await in_thread(read_range, path, offset, limit or CHUNK, running)
        else:
            piece = await in_thread(read_tail, path, tail or DEFAULT_TAIL, running)
    except FileNotFoundError:
        if running:
            return LogChunk(content="", offset=0, next_offset=0, size=0, running=True)
        raise _gone(path) from None
    return LogChunk(
        content=piece.content,
        offset=piece.offset,
        next_offset=piece.next_offset,
        size=piece.size,
        running=running,
    )


async def _download(path: str | None, name: str) -> Response:
    if path is None or not await in_thread(os.path.isfile, path):
        raise _gone(path or "(not written yet)")
    reader = ChunkReader(path)

    async def body() -> AsyncIterator[bytes]:
        while (text := await in_thread(reader.next)) is not None:
            yield text.encode("utf-8")

    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return StreamingResponse(
        body(),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get(
    _PATH + "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_log(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int,
    request: Request,
    user: ViewerDep,
    store: StoreDep,
    settings: SettingsDep,
    map_index: MapIndex = -1,
    offset: Annotated[int, Query(ge=0, description="Start at this byte.")] = 0,
) -> StreamingResponse:
    """Server-sent events: ``event: log`` with ``{"content", "next_offset"}`` as the
    file grows (looked at every half second), ``event: end`` once the try has ended
    and everything written was sent."""
    logs_folder = settings.logs_path
    path, running = await _locate(
        store, logs_folder, dag_id, run_id, task_id, map_index, try_number
    )
    ids = (dag_id, run_id, task_id, map_index, try_number)

    async def events() -> AsyncIterator[str]:
        position = offset
        where = path
        growing = running
        while True:
            try:
                if where is None:
                    where, _ = await _locate(store, logs_folder, *ids)
            except HTTPException:  # the run was deleted, or the try never wrote a log
                where = None
                growing = False
            piece: Piece | None = None
            if where is not None:
                try:
                    piece = await in_thread(read_range, where, position, CHUNK, growing)
                except FileNotFoundError:
                    piece = None
            if piece is not None and piece.next_offset > position:
                position = piece.next_offset
                yield _event("log", {"content": piece.content, "next_offset": position})
                continue  # more may be there already
            if not growing:
                yield _event("end", {"next_offset": position})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(FOLLOW_INTERVAL)
            # Ended since (or gone): one more read picks up its last lines, then the end.
            try:
                growing = await _still_running(store, *ids)
            except HTTPException:
                growing = False

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
