"""/api/v1/dags: the DAG list, one DAG's details, structure, source file and grid."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from starlette.responses import Response

from airloop.api.confined_files import OutsideFolderError, read_dag_source
from airloop.api.deps import DagsFolderDep, ViewerDep
from airloop.api.json_out import dag_run_json, json_response
from airloop.api.lookups import ReadsDep, dag_or_404, dag_record_or_404, not_found
from airloop.api.models import (
    DagDetail,
    DagSource,
    DagStructure,
    DagSummary,
    GridOut,
    ListOf,
    dag_detail,
    dag_summary,
    serialized_of,
)
from airloop.api.params import KnownParams, PaginationDep
from airloop.core.states import DagRunState
from airloop.dagbag.serialized import SerializedDag
from airloop.runtime import in_thread

router = APIRouter(tags=["DAGs"], dependencies=[KnownParams])

#: The grid shows at most this many runs a page.
MAX_GRID_RUNS = 365


@router.get("/dags", response_model=ListOf[DagSummary])
async def list_dags(
    user: ViewerDep,
    reads: ReadsDep,
    page: PaginationDep,
    search: Annotated[str | None, Query(description="Part of the dag_id (any case).")] = None,
    tags: Annotated[list[str] | None, Query(description="DAGs with all these tags.")] = None,
    paused: bool | None = None,
    active: bool | None = None,
    last_state: Annotated[
        DagRunState | None, Query(description="The state of the DAG's newest run.")
    ] = None,
) -> ListOf[DagSummary]:
    found = await reads.dags(
        search=search,
        tags=tags or (),
        paused=paused,
        active=active,
        last_state=None if last_state is None else last_state.value,
        limit=page.limit,
        offset=page.offset,
    )
    # Each summary parses its DAG's stored JSON: a page of 1,000 DAGs is tens of
    # milliseconds of CPU, kept off the event loop.
    summaries = await in_thread(lambda: [dag_summary(o) for o in found.items])
    return ListOf[DagSummary](items=summaries, total=found.total)


@router.get("/dags/{dag_id}", response_model=DagDetail)
async def get_dag(dag_id: str, user: ViewerDep, reads: ReadsDep) -> DagDetail:
    # The stored structure is parsed off the event loop (a wide DAG's JSON is large).
    return await in_thread(dag_detail, await dag_or_404(reads, dag_id))


def _structure_missing(dag_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"DAG {dag_id!r} has no stored structure yet (the scheduler stores it when it parses "
        "the file)",
    )


@router.get("/dags/{dag_id}/structure", response_model=DagStructure)
async def get_structure(dag_id: str, user: ViewerDep, reads: ReadsDep) -> DagStructure:
    data = await in_thread(serialized_of, await dag_record_or_404(reads, dag_id))
    if data is None:
        raise _structure_missing(dag_id)
    return DagStructure(
        tasks=[dict(t) for t in data["tasks"]],
        task_group=dict(data["task_group"]),
        edges=[dict(e) for e in data["edges"]],
    )


@router.get("/dags/{dag_id}/source", response_model=DagSource)
async def get_source(
    dag_id: str, user: ViewerDep, reads: ReadsDep, dags_folder: DagsFolderDep
) -> DagSource:
    """The DAG's file, when it lies in the DAGs folder (403 otherwise)."""
    fileloc = (await dag_record_or_404(reads, dag_id)).fileloc
    try:
        content = await in_thread(read_dag_source, fileloc, dags_folder)
    except OutsideFolderError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    if content is None:
        raise not_found(f"the file of DAG {dag_id!r} ({fileloc})")
    return DagSource(fileloc=fileloc, content=content)


def _task_order(data: SerializedDag) -> list[str]:
    """Task ids in the structure's order: the task group tree, depth first."""
    order: list[str] = []

    def walk(children: list[dict[str, Any]]) -> None:
        for child in children:
            if "task_id" in child:
                order.append(child["task_id"])
            else:
                walk(child.get("children") or [])

    walk(data["task_group"]["children"])
    seen = set(order)
    order.extend(t["task_id"] for t in data["tasks"] if t["task_id"] not in seen)
    return order


def _gone(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "group_id": None, "is_mapped": False, "operator": ""}


def _grid_tasks(data: SerializedDag | None, task_ids: set[str]) -> list[dict[str, Any]]:
    """GridTask objects (as JSON) in the structure's order."""
    if data is None:
        return [_gone(t) for t in sorted(task_ids)]
    info = {t["task_id"]: t for t in data["tasks"]}
    tasks = [
        {
            "task_id": t,
            "group_id": info[t]["group_id"],
            "is_mapped": info[t]["is_mapped"],
            "operator": info[t]["operator"],
        }
        for t in _task_order(data)
        if t in info
    ]
    # Tasks that ran in older runs but are gone from the DAG now: at the end.
    tasks.extend(_gone(t) for t in sorted(task_ids - info.keys()))
    return tasks


@router.get("/dags/{dag_id}/grid", response_model=GridOut)
async def get_grid(
    dag_id: str,
    user: ViewerDep,
    reads: ReadsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_GRID_RUNS, description="Runs a page.")] = 25,
    before: Annotated[
        str | None, Query(description="A run_id: the runs created before it (older page).")
    ] = None,
) -> Response:
    record = await dag_record_or_404(reads, dag_id)
    before_pk: int | None = None
    if before is not None:
        anchor = await reads.run(dag_id, before)
        if anchor is None:
            raise not_found(f"run {before!r} of DAG {dag_id!r}")
        before_pk = anchor.id
    grid = await reads.grid(dag_id, limit=limit, before=before_pk)
    run_ids = {r.id: r.run_id for r in grid.runs}
    # Polled by every open grid page: JSON straight from the records (json_out).
    return json_response(
        {
            "runs": [dag_run_json(r) for r in grid.runs],
            "tasks": _grid_tasks(
                await in_thread(serialized_of, record), {c.task_id for c in grid.cells}
            ),
            "cells": [
                {
                    "run_id": run_ids[c.run_pk],
                    "task_id": c.task_id,
                    "counts": c.counts,
                    "total": c.total,
                }
                for c in grid.cells
            ],
        }
    )
