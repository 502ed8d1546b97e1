"""/api/v1/dags/{dag_id}/dagRuns: a DAG's runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from airloop.api.deps import ViewerDep
from airloop.api.lookups import ReadsDep, not_found, run_or_404
from airloop.api.models import DagRun, ListOf, dag_run
from airloop.api.params import KnownParams, PaginationDep
from airloop.core.states import DagRunState
from airloop.store.reads import RUN_ORDERS, run_order

router = APIRouter(tags=["DAG runs"], dependencies=[KnownParams])


@router.get("/dags/{dag_id}/dagRuns", response_model=ListOf[DagRun])
async def list_runs(
    dag_id: str,
    user: ViewerDep,
    reads: ReadsDep,
    page: PaginationDep,
    state: DagRunState | None = None,
    run_type: Annotated[str | None, Query(description="manual, scheduled, backfill, ...")] = None,
    order_by: Annotated[
        str,
        Query(description=f"One of {', '.join(RUN_ORDERS)}; prefix - to reverse."),
    ] = "-logical_date",
) -> ListOf[DagRun]:
    try:
        run_order(order_by)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if not await reads.dag_exists(dag_id):
        raise not_found(f"DAG {dag_id!r}")
    found = await reads.runs(
        dag_id,
        state=None if state is None else state.value,
        run_type=run_type,
        order_by=order_by,
        limit=page.limit,
        offset=page.offset,
    )
    return ListOf[DagRun](items=[dag_run(r) for r in found.items], total=found.total)


@router.get("/dags/{dag_id}/dagRuns/{run_id}", response_model=DagRun)
async def get_run(dag_id: str, run_id: str, user: ViewerDep, reads: ReadsDep) -> DagRun:
    return dag_run(await run_or_404(reads, dag_id, run_id))
