"""The answers a polling UI asks for most, as JSON built straight from the store's
records: no pydantic model per row, no second validation of the handler's result.

Building a model per task instance and then letting FastAPI validate and serialise the
result cost the event loop more than the query did (docs/performance.md, "The UI's
load on the scheduler loop"). These functions build the same JSON the models in
``airloop.api.models`` give (``tests/api/test_json_out.py`` compares them field by
field) and ``json_response`` hands it over as a finished ``Response``: a route keeps
``response_model=`` for the OpenAPI document, and FastAPI does not validate a
``Response`` a handler returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import to_json
from starlette.responses import Response

from airloop.core.masking import redact
from airloop.store.read_records import TaskInstanceRecord
from airloop.store.records import DagRunRow


def iso(value: datetime | None) -> str | None:
    """As ``airloop.api.models.Time``: ISO 8601 with the offset."""
    return None if value is None else value.isoformat()


def task_instance_json(record: TaskInstanceRecord) -> dict[str, Any]:
    """``models.task_instance(record).model_dump(mode="json")``, without the model."""
    ti = record.ti
    return {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "rendered_map_index": ti.rendered_map_index,
        "state": ti.state.value,
        "try_number": ti.try_number,
        "max_tries": ti.max_tries,
        "queued_at": iso(ti.queued_at),
        "start_date": iso(ti.start_date),
        "end_date": iso(ti.end_date),
        "duration": ti.duration,
        "pool": ti.pool,
        "pool_slots": ti.pool_slots,
        "priority_weight": ti.priority_weight,
        "executor": ti.executor,
        "hostname": ti.hostname,
        "operator": ti.operator,
        "error": None if ti.error is None else redact(ti.error),
        "checkpoint": None if ti.checkpoint is None else redact(ti.checkpoint),
        "updated_at": iso(ti.updated_at),
    }


def dag_run_json(run: DagRunRow) -> dict[str, Any]:
    """``models.dag_run(run).model_dump(mode="json")``, without the model."""
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
        "conf": redact(run.params) if isinstance(run.params, dict) else {},
    }


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` (JSON types only) serialised once, by pydantic-core."""
    return Response(to_json(content), status_code=status_code, media_type="application/json")
