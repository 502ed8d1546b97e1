"""What the change endpoints answer: DagRun, task instance briefs and a DAG summary
as the contract (/work/wt/CONTRACT.md) describes them, built from store records; and
the small request checks they share (the 404s, the 409 for a run in flight, unknown
query parameters)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request, status

from airloop.core.masking import redact
from airloop.core.states import DagRunState
from airloop.store.records import DagRunRow, TaskInstanceRow
from airloop.store.run_requests import RunRequest
from airloop.store.runs import Store

#: A run the scheduler is driving: changing it under the scheduler is refused (409).
IN_FLIGHT = (DagRunState.QUEUED, DagRunState.RUNNING)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dag_run_out(run: DagRunRow) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "dag_id": run.dag_id,
        "state": run.state.value,
        "run_type": run.run_type,
        "logical_date": iso(run.logical_date),
        "data_interval_start": iso(run.data_interval_start),
        "data_interval_end": iso(run.data_interval_end),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "created_at": iso(run.created_at),
        "note": run.note,
        "conf": redact(run.params),
    }


def dag_run_brief(run: DagRunRow) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "state": run.state.value,
        "run_type": run.run_type,
        "logical_date": iso(run.logical_date),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
    }


def ti_brief(run: DagRunRow, ti: TaskInstanceRow) -> dict[str, Any]:
    """A task instance a change touches (or would: ``dry_run``), as it was before."""
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "state": ti.state.value,
    }


def request_out(asked: RunRequest) -> dict[str, Any]:
    """A change asked of the scheduler for a run in flight (applied at its next pass)."""
    return {
        "id": asked.id,
        "action": asked.action,
        "requested_by": asked.requested_by,
        "created_at": iso(asked.created_at),
        "done_at": iso(asked.done_at),
        "outcome": asked.outcome,
    }


async def find_run(store: Store, dag_id: str, run_id: str) -> DagRunRow:
    """The run, or 404 naming it."""
    found = await store.find_runs(run_id, dag_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"DAG {dag_id!r} has no run {run_id!r}")
    return found[0]


def refuse_in_flight(run: DagRunRow, what: str) -> None:
    """409 for a run the scheduler is driving (ADR 0039: no change under its feet)."""
    if run.state in IN_FLIGHT:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"cannot {what} run {run.run_id!r} of DAG {run.dag_id!r}: it is {run.state.value} "
            "(the scheduler is driving it); try again once it has finished",
        )


def check_query(request: Request, allowed: Iterable[str] = ()) -> None:
    """400 naming query parameters the endpoint does not take."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"unknown query parameter {unknown[0]!r} (this endpoint takes: {takes})",
        )


def page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    """One page of a short list (pools, connections, variables: offset pagination)."""
    return {"items": items[offset : offset + limit], "total": len(items), "next_cursor": None}
