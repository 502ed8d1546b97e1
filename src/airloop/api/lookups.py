"""What the read routes depend on: the store's read helpers, and the DAG, run or task
instance a path names (404 naming it when there is none)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from airloop.api.deps import StoreDep
from airloop.store.read_records import DagOverview, DagRecord, TaskInstanceRecord
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow
from airloop.store.runs import Store
from airloop.store.ti_reads import TaskInstanceReads


async def get_reads(store: StoreDep) -> Reads:
    return Reads(store)


async def get_ti_reads(store: StoreDep) -> TaskInstanceReads:
    return TaskInstanceReads(store)


ReadsDep = Annotated[Reads, Depends(get_reads)]
TIReadsDep = Annotated[TaskInstanceReads, Depends(get_ti_reads)]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


async def dag_or_404(reads: Reads, dag_id: str) -> DagOverview:
    overview = await reads.dag(dag_id)
    if overview is None:
        raise not_found(f"DAG {dag_id!r}")
    return overview


async def dag_record_or_404(reads: Reads, dag_id: str) -> DagRecord:
    record = await reads.dag_record(dag_id)
    if record is None:
        raise not_found(f"DAG {dag_id!r}")
    return record


async def run_or_404(reads: Reads, dag_id: str, run_id: str) -> DagRunRow:
    run = await reads.run(dag_id, run_id)
    if run is None:
        if not await reads.dag_exists(dag_id):
            raise not_found(f"DAG {dag_id!r}")
        raise not_found(f"run {run_id!r} of DAG {dag_id!r}")
    return run


async def ti_or_404(
    store: Store, dag_id: str, run_id: str, task_id: str, map_index: int
) -> TaskInstanceRecord:
    record = await TaskInstanceReads(store).get(dag_id, run_id, task_id, map_index)
    if record is None:
        await run_or_404(Reads(store), dag_id, run_id)
        where = f"task {task_id!r}" + (f" map index {map_index}" if map_index >= 0 else "")
        raise not_found(f"{where} in run {run_id!r} of DAG {dag_id!r}")
    return record
