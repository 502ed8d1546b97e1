"""What only the change endpoints answer -- the task instances a clear or mark
touches, the request a mark of a run in flight leaves for the scheduler -- and their
409 for a run in flight. Runs, DAGs, the 404s and the unknown-parameter rule are the
read side's (``api.models``, ``api.lookups``, ``api.params``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException, status

from airloop.core.states import DagRunState
from airloop.store.records import DagRunRow, TaskInstanceRow
from airloop.store.run_requests import RunRequest

#: A run the scheduler is driving: changing it under the scheduler is refused (409).
IN_FLIGHT = (DagRunState.QUEUED, DagRunState.RUNNING)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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


def refuse_in_flight(run: DagRunRow, what: str) -> None:
    """409 for a run the scheduler is driving (ADR 0039: no change under its feet)."""
    if run.state in IN_FLIGHT:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"cannot {what} run {run.run_id!r} of DAG {run.dag_id!r}: it is {run.state.value} "
            "(the scheduler is driving it); try again once it has finished",
        )
