"""The hot read answers built without pydantic models (airloop.api.json_out) are the
JSON the models give: field by field from the same records, and over HTTP against the
models the OpenAPI document describes; on every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from pydantic import TypeAdapter

from airloop.api.json_out import dag_run_json, task_instance_json
from airloop.api.models import GridOut, ListOf, TaskInstance, dag_run, task_instance
from airloop.core.masking import mask_secret
from airloop.core.states import TaskState
from airloop.store.read_records import TaskInstanceFilter
from airloop.store.reads import Reads
from airloop.store.records import CheckpointRow, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.ti_reads import TaskInstanceReads

from .reads_support import T0, mapped_dag, mapped_run, register

RUN = "scheduled__2026-01-01T00:00:00+00:00"


async def _varied_run(store: Store) -> int:
    """Instances with every kind of field: times and none, an error naming a secret, a
    checkpoint with a sensitive key, a rendered map index."""
    await register(store, mapped_dag())
    states = [TaskState.SUCCESS, TaskState.FAILED, TaskState.RUNNING, TaskState.QUEUED]
    pk = await mapped_run(store, states=states)
    mask_secret("hunter2-json-out")
    start = T0 + timedelta(days=1)
    await store.write(
        WriteBatch(
            ti_updates=[
                TIUpdate(
                    pk,
                    "group.double",
                    1,
                    TaskState.FAILED,
                    2,
                    queued_at=start,
                    start_date=start + timedelta(seconds=1),
                    end_date=start + timedelta(seconds=3, microseconds=250),
                    duration=2.000250,
                    hostname="worker-1",
                    executor="local",
                    error="login failed for hunter2-json-out",
                    rendered_map_index="x=2",
                )
            ]
        )
    )
    await store.save_checkpoints(
        [
            CheckpointRow(
                pk,
                "group.double",
                2,
                {"try_number": 1, "value": {"job_id": "j-1", "password": "pw-json-out"}},
            )
        ]
    )
    return pk


def _models_json(model: Any) -> Any:
    return model.model_dump(mode="json")


async def test_task_instances_and_runs_are_the_models_json(api_store: Store) -> None:
    await _varied_run(api_store)
    every = TaskInstanceFilter(dag_id="mapped", run_id=RUN)
    page = await TaskInstanceReads(api_store).list(every, limit=100)
    assert len(page.items) == 6
    for record in page.items:
        assert task_instance_json(record) == _models_json(task_instance(record))
    failed = next(r for r in page.items if r.ti.task_id == "group.double" and r.ti.map_index == 1)
    assert "hunter2-json-out" not in str(task_instance_json(failed))
    checkpointed = next(r for r in page.items if r.ti.checkpoint is not None)
    assert "pw-json-out" not in str(task_instance_json(checkpointed))
    run = await Reads(api_store).run("mapped", RUN)
    assert run is not None
    assert dag_run_json(run) == _models_json(dag_run(run))
    assert dag_run_json(run)["conf"]["token"] == "***"


async def test_the_list_and_grid_answers_are_what_the_openapi_models_say(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await _varied_run(api_store)
    response = await client.get(f"/api/v1/dags/mapped/dagRuns/{RUN}/taskInstances?limit=4")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    shape = TypeAdapter(ListOf[TaskInstance])
    assert _models_json(shape.validate_python(body)) == body
    assert body["total"] == 6
    assert len(body["items"]) == 4
    assert body["next_cursor"]
    grid = await client.get("/api/v1/dags/mapped/grid")
    assert grid.status_code == 200
    assert _models_json(GridOut.model_validate(grid.json())) == grid.json()
    # The OpenAPI document still describes both answers.
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    ok = paths["/api/v1/dags/{dag_id}/grid"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/GridOut"}
    tis = paths["/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances"]["get"]["responses"]["200"]
    assert "ListOf_TaskInstance_" in tis["content"]["application/json"]["schema"]["$ref"]
