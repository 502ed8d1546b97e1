"""Pools, connections and variables through the API, on every backend: pools seeded
from the settings and counted from task instances, connection passwords never
answered (and stored encrypted), sensitive values masked."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest_asyncio

from airloop.api.routes.connections import metastore
from airloop.core.states import TaskState
from airloop.settings import Settings
from airloop.store.connections import ConnectionStore
from airloop.store.records import NewTaskInstance, TIUpdate, WriteBatch
from airloop.store.runs import Store

from .writes_support import scheduler_settings

API = "/api/v1"


@pytest_asyncio.fixture
async def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return scheduler_settings(tmp_path, database_url, pools={"etl": 4})


# -- pools -------------------------------------------------------------------------------


async def test_pools_are_seeded_from_the_settings(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/pools")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["next_cursor"] is None
    by_name = {p["name"]: p for p in body["items"]}
    assert by_name["etl"] == {
        "name": "etl",
        "slots": 4,
        "description": "from the settings",
        "occupied": 0,
        "running": 0,
        "queued": 0,
        "scheduled": 0,
        "open": 4,
    }
    assert by_name["default_pool"]["slots"] == 100_000


async def test_pool_crud(client: httpx.AsyncClient) -> None:
    created = await client.post(
        f"{API}/pools", json={"name": "gpu", "slots": 2, "description": "the GPUs"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["open"] == 2
    duplicate = await client.post(f"{API}/pools", json={"name": "gpu", "slots": 2})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "pool 'gpu' already exists"
    patched = await client.patch(f"{API}/pools/gpu", json={"slots": 5})
    assert patched.json()["slots"] == 5
    assert patched.json()["description"] == "the GPUs"
    assert (await client.get(f"{API}/pools/gpu")).json()["slots"] == 5
    assert (await client.delete(f"{API}/pools/gpu")).status_code == 204
    assert (await client.get(f"{API}/pools/gpu")).status_code == 404
    assert (await client.delete(f"{API}/pools/gpu")).status_code == 404
    assert (await client.patch(f"{API}/pools/gpu", json={"slots": 1})).status_code == 404


async def test_pool_refusals(client: httpx.AsyncClient) -> None:
    default = await client.delete(f"{API}/pools/default_pool")
    assert default.status_code == 400
    assert "'default_pool' cannot be deleted" in default.json()["detail"]
    for body in (
        {"name": "p", "slots": -1},
        {"name": "", "slots": 1},
        {"name": "p q", "slots": 1},
        {"name": "p", "slots": 1, "size": 3},
        {"name": "p"},
    ):
        response = await client.post(f"{API}/pools", json=body)
        assert response.status_code == 422, body
    negative = await client.patch(f"{API}/pools/etl", json={"slots": -2})
    assert negative.status_code == 422
    null = await client.patch(f"{API}/pools/etl", json={"slots": None})
    assert null.status_code == 400
    paged = await client.get(f"{API}/pools?limit=1&offset=1")
    assert paged.json()["total"] == 2
    assert [p["name"] for p in paged.json()["items"]] == ["etl"]
    assert (await client.get(f"{API}/pools?limit=0")).status_code == 422
    unknown = await client.get(f"{API}/pools?sort=name")
    assert unknown.status_code == 400
    assert "unknown query parameter(s): sort" in unknown.json()["detail"]


async def test_pool_use_is_counted_from_task_instances(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    pk = await api_store.create_run(
        dag_id="d",
        run_id="r",
        run_type="manual",
        logical_date=None,
        params={},
        task_instances=[
            NewTaskInstance("t1", "etl", 2, 1, 1),
            NewTaskInstance("t2", "etl", 1, 1, 1),
            NewTaskInstance("t3", "etl", 1, 1, 1),
            NewTaskInstance("t4", "etl", 1, 1, 1),
        ],
    )
    await api_store.write(
        WriteBatch(
            ti_updates=[
                TIUpdate(pk, "t1", -1, TaskState.RUNNING, 1),
                TIUpdate(pk, "t2", -1, TaskState.QUEUED, 1),
                TIUpdate(pk, "t3", -1, TaskState.SCHEDULED, 0),
                TIUpdate(pk, "t4", -1, TaskState.SUCCESS, 1),
            ]
        )
    )
    etl = (await client.get(f"{API}/pools/etl")).json()
    assert (etl["running"], etl["queued"], etl["scheduled"]) == (2, 1, 1)
    assert (etl["occupied"], etl["open"]) == (3, 1)


# -- connections -------------------------------------------------------------------------


async def test_a_connection_password_never_leaves_the_server(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings
) -> None:
    created = await client.post(
        f"{API}/connections",
        json={
            "conn_id": "warehouse",
            "conn_type": "postgres",
            "host": "db.example",
            "schema": "sales",
            "login": "ada",
            "password": "s3cr3t-pw",
            "port": 5432,
            "extra": {"sslmode": "require", "api_token": "tok-123"},
        },
    )
    assert created.status_code == 201, created.text
    for response in (
        created,
        await client.get(f"{API}/connections/warehouse"),
        await client.get(f"{API}/connections"),
        await client.patch(f"{API}/connections/warehouse", json={"host": "db2.example"}),
    ):
        assert "s3cr3t-pw" not in response.text
        assert "tok-123" not in response.text
    one = (await client.get(f"{API}/connections/warehouse")).json()
    assert one == {
        "conn_id": "warehouse",
        "conn_type": "postgres",
        "description": None,
        "host": "db2.example",
        "schema": "sales",
        "login": "ada",
        "port": 5432,
        "extra": json.dumps({"sslmode": "require", "api_token": "***"}),
        "has_password": True,
    }
    # Stored encrypted, and the password kept by the patch that did not name it.
    record = await ConnectionStore(api_store.engine).get_connection("warehouse")
    assert record is not None
    assert record.is_encrypted
    assert record.password is not None
    assert "s3cr3t-pw" not in record.password
    cleared = await client.patch(f"{API}/connections/warehouse", json={"password": None})
    assert cleared.json()["has_password"] is False
    # The admin page sends back the extra it was shown, one key edited: the masked
    # value stays what it was, not "***".
    edited = {"sslmode": "disable", "api_token": "***"}
    patched = await client.patch(f"{API}/connections/warehouse", json={"extra": edited})
    assert patched.status_code == 200, patched.text
    source = metastore(api_store, api_settings)
    stored = await source.get_connection("warehouse")
    assert stored is not None
    assert stored.extra_dejson == {"sslmode": "disable", "api_token": "tok-123"}


async def test_connection_crud_and_refusals(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/connections", json={"conn_id": "c"})).status_code == 201
    duplicate = await client.post(f"{API}/connections", json={"conn_id": "c"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "connection 'c' already exists"
    bad_extra = await client.post(f"{API}/connections", json={"conn_id": "e", "extra": "[1]"})
    assert bad_extra.status_code == 400
    assert bad_extra.json()["detail"] == "connection 'e': extra must be a JSON object"
    assert (
        await client.post(f"{API}/connections", json={"conn_id": "p", "port": -1})
    ).status_code == 422
    assert (
        await client.post(f"{API}/connections", json={"conn_id": "x", "passwd": "a"})
    ).status_code == 422
    listed = (await client.get(f"{API}/connections")).json()
    assert [c["conn_id"] for c in listed["items"]] == ["c"]
    assert (await client.delete(f"{API}/connections/c")).status_code == 204
    missing = await client.get(f"{API}/connections/c")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no connection 'c'"


# -- variables ---------------------------------------------------------------------------


async def test_variables_crud_with_sensitive_values_masked(client: httpx.AsyncClient) -> None:
    for key, value in (("region", "eu-west-1"), ("db_password", "hunter2")):
        response = await client.post(
            f"{API}/variables", json={"key": key, "value": value, "description": key}
        )
        assert response.status_code == 201, response.text
    listed = await client.get(f"{API}/variables")
    assert "hunter2" not in listed.text
    assert listed.json()["items"] == [
        {"key": "db_password", "value": "***", "description": "db_password"},
        {"key": "region", "value": "eu-west-1", "description": "region"},
    ]
    assert (await client.get(f"{API}/variables/db_password")).json()["value"] == "***"
    patched = await client.patch(f"{API}/variables/region", json={"value": "us-east-2"})
    assert patched.json() == {"key": "region", "value": "us-east-2", "description": "region"}
    duplicate = await client.post(f"{API}/variables", json={"key": "region", "value": "x"})
    assert duplicate.status_code == 409
    assert (await client.post(f"{API}/variables", json={"key": "n", "value": 3})).status_code == 422
    assert (await client.delete(f"{API}/variables/region")).status_code == 204
    assert (await client.get(f"{API}/variables/region")).status_code == 404
    assert (await client.delete(f"{API}/variables/region")).status_code == 404
