"""The app factory: the OpenAPI document is served, and a DAG's structure written by
the scheduler's sync reads back whole."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.params import Param
from airloop.authoring.taskgroup import TaskGroup
from airloop.dagbag.serialized import dumps, loads, serialize_dag
from airloop.store.runs import Store
from airloop.store.schema import serialized_dag
from airloop.store.service import ServiceStore


async def test_the_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "airloop"


def _dag() -> DAG:
    with DAG(
        "shape",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        params={"n": Param(3, minimum=1), "name": Param(type="string")},
        tags=["team"],
        default_args={"owner": "ops"},
    ) as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2]

        @task
        def double(x: int) -> int:
            return 2 * x

        with TaskGroup("group"):
            double.expand(x=numbers())
    return dag


async def test_sync_stores_the_structure_and_rewrites_it_only_when_it_changes(
    api_store: Store,
) -> None:
    service = ServiceStore(api_store)
    dag = _dag()
    text, digest = dumps(serialize_dag(dag))
    await service.sync_dags({"shape": (dag.fileloc, "@daily")}, [], {"shape": (text, digest)})
    async with api_store.engine.connect() as conn:
        row = (await conn.execute(select(serialized_dag))).one()
    data = loads(row.data)
    assert data["tags"] == ["team"]
    assert data["owners"] == ["ops"]
    assert data["params"]["n"] == {
        "schema": {"type": "integer", "minimum": 1},
        "default": 3,
        "description": None,
    }
    assert "default" not in data["params"]["name"]
    mapped = {t["task_id"]: t for t in data["tasks"]}
    assert mapped["group.double"]["is_mapped"]
    assert mapped["group.double"]["group_id"] == "group"
    assert data["edges"] == [{"source": "group.numbers", "target": "group.double", "label": None}]
    first = row.updated_at
    await service.sync_dags({"shape": (dag.fileloc, "@daily")}, [], {"shape": (text, digest)})
    async with api_store.engine.connect() as conn:
        assert (await conn.execute(select(serialized_dag.c.updated_at))).scalar() == first
    changed = dict(data, tags=["team", "new"])
    text2, digest2 = dumps(changed)
    await service.sync_dags({"shape": (dag.fileloc, "@daily")}, [], {"shape": (text2, digest2)})
    async with api_store.engine.connect() as conn:
        row = (await conn.execute(select(serialized_dag))).one()
    assert row.dag_hash == digest2
    assert loads(row.data)["tags"] == ["team", "new"]
    await service.sync_dags({}, [], {})
    async with api_store.engine.connect() as conn:
        assert (await conn.execute(select(serialized_dag))).first() is None
