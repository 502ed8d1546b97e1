"""/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances: task instances (keyset pages),
one instance, its tries, XComs and rendered template fields."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from starlette.responses import Response

from airloop.api.confined_files import OutsideFolderError, confined
from airloop.api.deps import SettingsDep, StoreDep, ViewerDep
from airloop.api.json_out import json_response, task_instance_json
from airloop.api.lookups import ReadsDep, TIReadsDep, not_found, run_or_404, ti_or_404
from airloop.api.models import (
    ListOf,
    RenderedFields,
    TaskInstance,
    TryInfo,
    XComOut,
    task_instance,
)
from airloop.api.params import KnownParams, PaginationDep
from airloop.core.masking import redact
from airloop.core.states import TaskState
from airloop.runtime import in_thread
from airloop.store.read_records import TaskInstanceFilter
from airloop.store.ti_reads import TI_ORDERS

router = APIRouter(tags=["Task instances"], dependencies=[KnownParams])

ALL = "~"
_BASE = "/dags/{dag_id}/dagRuns/{run_id}/taskInstances"

MapIndex = Annotated[int, Query(ge=-1, description="The mapped instance (-1: unmapped).")]


@router.get(_BASE, response_model=ListOf[TaskInstance])
async def list_task_instances(
    dag_id: str,
    run_id: str,
    user: ViewerDep,
    reads: ReadsDep,
    tis: TIReadsDep,
    page: PaginationDep,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page (instead of offset).")
    ] = None,
    task_id: str | None = None,
    state: TaskState | None = None,
    map_index: Annotated[int | None, Query(ge=-1)] = None,
    start_date_gte: datetime | None = None,
    start_date_lte: datetime | None = None,
    order_by: Annotated[
        str | None,
        Query(
            description=f"One of {', '.join(TI_ORDERS)} (prefix - to reverse); default: "
            "run, task, map index."
        ),
    ] = None,
) -> Response:
    """``dag_id`` and ``run_id`` may be ``~``: every DAG, every run."""
    if cursor is not None and page.offset:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "give either offset or cursor, not both")
    for name, value in (("start_date_gte", start_date_gte), ("start_date_lte", start_date_lte)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"{name} needs a time zone (e.g. 2026-12-02T04:30:00+00:00)",
            )
    where = TaskInstanceFilter(
        dag_id=None if dag_id == ALL else dag_id,
        run_id=None if run_id == ALL else run_id,
        task_id=task_id,
        state=None if state is None else state.value,
        map_index=map_index,
        start_date_gte=start_date_gte,
        start_date_lte=start_date_lte,
    )
    try:
        found = await tis.list(
            where, order_by=order_by, limit=page.limit, offset=page.offset, cursor=cursor
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    # A run or DAG with instances on this page exists: only an empty answer needs to
    # know whether it is empty or names nothing (a query less for every polled page).
    if not found.total:
        if dag_id != ALL and run_id != ALL:
            await run_or_404(reads, dag_id, run_id)
        elif dag_id != ALL and not await reads.dag_exists(dag_id):
            raise not_found(f"DAG {dag_id!r}")
    # The polling UI's most frequent request: JSON straight from the records (json_out).
    return json_response(
        {
            "items": [task_instance_json(r) for r in found.items],
            "total": found.total,
            "next_cursor": found.next_cursor,
        }
    )


@router.get(_BASE + "/{task_id}", response_model=TaskInstance)
async def get_task_instance(
    dag_id: str, run_id: str, task_id: str, user: ViewerDep, store: StoreDep
) -> TaskInstance:
    return task_instance(await ti_or_404(store, dag_id, run_id, task_id, -1))


def _sizes(paths: list[str], logs_folder: Path) -> list[int | None]:
    """Each log file's size (None: no file, or a path outside the logs folder)."""
    out: list[int | None] = []
    for path in paths:
        try:
            out.append(os.stat(confined(path, logs_folder, "logs folder")).st_size)
        except (OSError, OutsideFolderError):
            out.append(None)
    return out


@router.get(_BASE + "/{task_id}/tries", response_model=list[TryInfo])
async def list_tries(
    dag_id: str,
    run_id: str,
    task_id: str,
    user: ViewerDep,
    store: StoreDep,
    reads: ReadsDep,
    settings: SettingsDep,
    map_index: MapIndex = -1,
) -> list[TryInfo]:
    """Every try so far, with its log file's size (null when there is no file)."""
    record = await ti_or_404(store, dag_id, run_id, task_id, map_index)
    files = {
        f.try_number: f.path
        for f in await reads.log_files(record.ti.dag_run_id, task_id, map_index)
    }
    numbers = sorted(set(range(1, record.ti.try_number + 1)) | files.keys())
    sizes = await in_thread(_sizes, [files.get(n, "") for n in numbers], settings.logs_path)
    return [
        TryInfo(try_number=n, log_size=size, path_exists=size is not None)
        for n, size in zip(numbers, sizes, strict=True)
    ]


def _json(text: str, name: str | None) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return redact(value, name)


@router.get(_BASE + "/{task_id}/xcomEntries", response_model=list[XComOut])
async def list_xcoms(
    dag_id: str,
    run_id: str,
    task_id: str,
    user: ViewerDep,
    store: StoreDep,
    reads: ReadsDep,
    map_index: MapIndex = -1,
) -> list[XComOut]:
    record = await ti_or_404(store, dag_id, run_id, task_id, map_index)
    entries = await reads.xcoms(record.ti.dag_run_id, task_id, map_index)
    return [XComOut(key=e.key, value=_json(e.value, e.key), size=e.size) for e in entries]


@router.get(_BASE + "/{task_id}/renderedFields", response_model=RenderedFields)
async def get_rendered_fields(
    dag_id: str,
    run_id: str,
    task_id: str,
    user: ViewerDep,
    store: StoreDep,
    map_index: MapIndex = -1,
    try_number: Annotated[
        int | None, Query(ge=1, description="Default: the latest try that rendered.")
    ] = None,
) -> RenderedFields:
    record = await ti_or_404(store, dag_id, run_id, task_id, map_index)
    row = await store.rendered_fields(record.ti.dag_run_id, task_id, map_index, try_number)
    if row is None:
        which = "" if try_number is None else f" for try {try_number}"
        raise not_found(f"rendered fields{which} of task {task_id!r} in run {run_id!r}")
    fields = _json(row.fields, None)
    return RenderedFields(
        try_number=row.try_number, fields=fields if isinstance(fields, dict) else {}
    )


@router.get(_BASE + "/{task_id}/{map_index}", response_model=TaskInstance)
async def get_mapped_task_instance(
    dag_id: str, run_id: str, task_id: str, map_index: int, user: ViewerDep, store: StoreDep
) -> TaskInstance:
    return task_instance(await ti_or_404(store, dag_id, run_id, task_id, map_index))
