"""Changing DAGs and runs through the API (no scheduler running): pause, trigger with
params checked, mark, note, clear (dry runs and real), delete, and the refusals --
a viewer, a run in flight, bad input -- on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.params import Param
from airloop.core.states import DagRunState, TaskState
from airloop.settings import Settings
from airloop.store.records import NewTaskInstance, RunUpdate, TIUpdate, WriteBatch
from airloop.store.run_requests import requests_of
from airloop.store.runs import Store

from .writes_support import as_viewer, record_dags, scheduler_settings

API = "/api/v1"
WHEN = datetime(2026, 11, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return scheduler_settings(tmp_path, database_url)


def _chain() -> DAG:
    """a -> b -> c, d alone; params n (integer >= 1, default 3) and name (required)."""
    with DAG(
        "chain",
        params={"n": Param(3, minimum=1), "name": Param(type="string")},
    ) as dag:

        @task
        def a() -> None: ...

        @task
        def b() -> None: ...

        @task
        def c() -> None: ...

        @task
        def d() -> None: ...

        a() >> b() >> c()
        d()
    return dag


@pytest_asyncio.fixture
async def chain(api_store: Store) -> DAG:
    dag = _chain()
    await record_dags(api_store, dag)
    return dag


async def _finished_run(store: Store, run_id: str, states: dict[str, TaskState]) -> int:
    """A run of ``chain`` as the scheduler leaves it: task instances in ``states``."""
    pk = await store.create_run(
        dag_id="chain",
        run_id=run_id,
        run_type="manual",
        logical_date=WHEN + timedelta(days=len(run_id)),
        params={"n": 3, "name": "x"},
        task_instances=[NewTaskInstance(t, "default_pool", 1, 1, 1) for t in states],
    )
    failed = any(s in (TaskState.FAILED, TaskState.UPSTREAM_FAILED) for s in states.values())
    batch = WriteBatch(
        ti_updates=[TIUpdate(pk, t, -1, s, 1, end_date=WHEN) for t, s in states.items()],
        run_updates=[RunUpdate(pk, DagRunState.FAILED if failed else DagRunState.SUCCESS, WHEN)],
    )
    await store.write(batch)
    return pk


FAILED_B = {
    "a": TaskState.SUCCESS,
    "b": TaskState.FAILED,
    "c": TaskState.UPSTREAM_FAILED,
    "d": TaskState.SUCCESS,
}


async def _states(store: Store, pk: int) -> dict[str, str]:
    return {ti.task_id: ti.state.value for ti in await store.task_instances(pk)}


# -- trigger -----------------------------------------------------------------------------


async def test_trigger_queues_a_run_with_defaults_filled_in(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    response = await client.post(
        f"{API}/dags/chain/dagRuns",
        json={"run_id": "r1", "conf": {"name": "ada"}, "note": "by hand"},
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["run_id"] == "r1"
    assert run["state"] == "queued"
    assert run["run_type"] == "manual"
    assert run["conf"] == {"n": 3, "name": "ada"}
    assert run["note"] == "by hand"
    (stored,) = await api_store.find_runs("r1", "chain")
    assert stored.state is DagRunState.QUEUED
    assert stored.params == {"n": 3, "name": "ada"}


async def test_trigger_takes_a_logical_date_and_names_the_run_after_it(
    client: httpx.AsyncClient, chain: DAG
) -> None:
    response = await client.post(
        f"{API}/dags/chain/dagRuns",
        json={"logical_date": "2026-11-05T10:00:00+01:00", "conf": {"name": "x", "n": "7"}},
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["logical_date"] == "2026-11-05T09:00:00+00:00"
    assert run["run_id"] == "manual__2026-11-05T09:00:00+00:00"
    assert run["conf"]["n"] == 7  # text that is JSON of the right type, as the form sends


async def test_bad_params_are_400_with_a_message_per_param(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    response = await client.post(
        f"{API}/dags/chain/dagRuns", json={"conf": {"n": 0, "colour": "red"}}
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"n", "name", "colour"}
    assert "minimum" in body["errors"]["n"]
    assert "required" in body["errors"]["name"]
    assert "not a parameter" in body["errors"]["colour"]
    assert body["detail"].startswith("conf does not fit DAG 'chain''s params")
    assert await api_store.latest_runs(dag_id="chain") == []


async def test_trigger_refusals(client: httpx.AsyncClient, chain: DAG) -> None:
    missing = await client.post(f"{API}/dags/nope/dagRuns", json={"conf": {}})
    assert missing.status_code == 404
    assert "no DAG 'nope'" in missing.json()["detail"]
    first = await client.post(
        f"{API}/dags/chain/dagRuns", json={"run_id": "x", "conf": {"name": "a"}}
    )
    assert first.status_code == 201
    again = await client.post(
        f"{API}/dags/chain/dagRuns", json={"run_id": "x", "conf": {"name": "a"}}
    )
    assert again.status_code == 409
    assert "'x'" in again.json()["detail"]
    unknown_field = await client.post(f"{API}/dags/chain/dagRuns", json={"conf": {}, "confs": {}})
    assert unknown_field.status_code == 422
    naive = await client.post(
        f"{API}/dags/chain/dagRuns",
        json={"logical_date": "2026-11-05T10:00:00", "conf": {"name": "a"}},
    )
    assert naive.status_code == 400
    assert "time zone" in naive.json()["detail"]
    query = await client.post(f"{API}/dags/chain/dagRuns?force=1", json={"conf": {"name": "a"}})
    assert query.status_code == 400
    assert "unknown query parameter(s): force" in query.json()["detail"]


# -- pause -------------------------------------------------------------------------------


async def test_pause_and_unpause(client: httpx.AsyncClient, chain: DAG) -> None:
    paused = await client.patch(f"{API}/dags/chain", json={"is_paused": True})
    assert paused.status_code == 200, paused.text
    assert paused.json()["is_paused"] is True
    assert paused.json()["dag_id"] == "chain"
    unpaused = await client.patch(f"{API}/dags/chain", json={"is_paused": False})
    assert unpaused.json()["is_paused"] is False
    listed = (await client.get(f"{API}/dags", params={"search": "chain"})).json()["items"]
    assert unpaused.json() == listed[0]  # the DagSummary the reads answer, field for field
    missing = await client.patch(f"{API}/dags/nope", json={"is_paused": True})
    assert missing.status_code == 404
    bad = await client.patch(f"{API}/dags/chain", json={"is_paused": "maybe"})
    assert bad.status_code == 422


# -- viewer ------------------------------------------------------------------------------


CHANGES = [
    ("PATCH", "/dags/chain", {"is_paused": True}),
    ("POST", "/dags/chain/dagRuns", {"conf": {"name": "a"}}),
    ("PATCH", "/dags/chain/dagRuns/r/note", {"note": "n"}),
    ("PATCH", "/dags/chain/dagRuns/r", {"state": "success"}),
    ("POST", "/dags/chain/dagRuns/r/clear", {}),
    ("DELETE", "/dags/chain/dagRuns/r", None),
    ("POST", "/dags/chain/clearTaskInstances", {"dag_run_id": "r"}),
    ("PATCH", "/dags/chain/dagRuns/r/taskInstances/a", {"new_state": "success"}),
    ("POST", "/pools", {"name": "p", "slots": 1}),
    ("PATCH", "/pools/default_pool", {"slots": 1}),
    ("DELETE", "/pools/p", None),
    ("POST", "/connections", {"conn_id": "c"}),
    ("PATCH", "/connections/c", {"host": "h"}),
    ("DELETE", "/connections/c", None),
    ("POST", "/variables", {"key": "k", "value": "v"}),
    ("PATCH", "/variables/k", {"value": "v"}),
    ("DELETE", "/variables/k", None),
]


async def test_a_viewer_may_not_change_anything(
    client: httpx.AsyncClient, app: FastAPI, api_store: Store, chain: DAG
) -> None:
    await _finished_run(api_store, "r", FAILED_B)
    with as_viewer(app):
        for method, path, body in CHANGES:
            response = await client.request(method, f"{API}{path}", json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"detail": "this needs the admin role"}
        for path in ("/pools", "/connections", "/variables"):
            assert (await client.get(f"{API}{path}")).status_code == 200, path
    assert await _states(api_store, (await api_store.find_runs("r"))[0].id) == FAILED_B
    assert len(await api_store.latest_runs(dag_id="chain")) == 1


# -- mark, note, delete ------------------------------------------------------------------


async def test_mark_a_failed_run_success(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    pk = await _finished_run(api_store, "r", FAILED_B)
    response = await client.patch(f"{API}/dags/chain/dagRuns/r", json={"state": "success"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "success"
    assert set((await _states(api_store, pk)).values()) == {"success"}
    bad = await client.patch(f"{API}/dags/chain/dagRuns/r", json={"state": "running"})
    assert bad.status_code == 422


async def test_a_run_in_flight_is_not_changed_but_its_note_is(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    await client.post(f"{API}/dags/chain/dagRuns", json={"run_id": "q", "conf": {"name": "a"}})
    for method, path, body in [
        ("POST", "/dags/chain/dagRuns/q/clear", {}),
        ("DELETE", "/dags/chain/dagRuns/q", None),
        ("POST", "/dags/chain/clearTaskInstances", {"dag_run_id": "q", "task_ids": ["a"]}),
        ("PATCH", "/dags/chain/dagRuns/q/taskInstances/a", {"new_state": "success"}),
    ]:
        response = await client.request(method, f"{API}{path}", json=body)
        assert response.status_code == 409, (method, path, response.text)
        assert "it is queued" in response.json()["detail"]
    noted = await client.patch(f"{API}/dags/chain/dagRuns/q/note", json={"note": "wait"})
    assert noted.status_code == 200
    assert noted.json()["note"] == "wait"
    (run,) = await api_store.find_runs("q", "chain")
    assert run.state is DagRunState.QUEUED
    assert run.note == "wait"


async def test_marking_a_run_in_flight_asks_the_scheduler(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    await client.post(f"{API}/dags/chain/dagRuns", json={"run_id": "q", "conf": {"name": "a"}})
    response = await client.patch(f"{API}/dags/chain/dagRuns/q", json={"state": "failed"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued"  # unchanged until the scheduler applies it
    assert body["request"]["action"] == "mark_failed"
    assert body["request"]["requested_by"] == "admin"
    assert body["request"]["done_at"] is None
    (run,) = await api_store.find_runs("q", "chain")
    assert run.state is DagRunState.QUEUED
    (asked,) = await requests_of(api_store, run.id)
    assert (asked.action, asked.done_at) == ("mark_failed", None)


async def test_delete_a_finished_run(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    pk = await _finished_run(api_store, "r", FAILED_B)
    response = await client.delete(f"{API}/dags/chain/dagRuns/r")
    assert response.status_code == 204
    assert await api_store.get_run(pk) is None
    assert await api_store.task_instances(pk) == []
    again = await client.delete(f"{API}/dags/chain/dagRuns/r")
    assert again.status_code == 404
    assert again.json()["detail"] == "run 'r' of DAG 'chain' not found"


# -- clear -------------------------------------------------------------------------------


async def test_clear_dry_run_follows_the_edges_and_changes_nothing(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    pk = await _finished_run(api_store, "r", FAILED_B)

    async def dry(**body: object) -> list[str]:
        response = await client.post(
            f"{API}/dags/chain/clearTaskInstances",
            json={"dag_run_id": "r", "dry_run": True, **body},
        )
        assert response.status_code == 200, response.text
        return sorted(ti["task_id"] for ti in response.json()["task_instances"])

    assert await dry(task_ids=["b"]) == ["b"]
    assert await dry(task_ids=["b"], include_downstream=True) == ["b", "c"]
    assert await dry(task_ids=["b"], include_upstream=True) == ["a", "b"]
    assert await dry(task_ids=["a"], include_downstream=True, only_failed=True) == ["b", "c"]
    assert await dry() == ["a", "b", "c", "d"]
    assert await dry(task_ids=["d"], map_indexes=[0]) == []
    assert await _states(api_store, pk) == FAILED_B
    (run,) = await api_store.find_runs("r", "chain")
    assert run.state is DagRunState.FAILED
    unknown = await client.post(
        f"{API}/dags/chain/clearTaskInstances", json={"dag_run_id": "r", "task_ids": ["zz"]}
    )
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == "DAG 'chain' has no task 'zz'"


async def test_clear_failed_task_instances_queues_the_run(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    pk = await _finished_run(api_store, "r", FAILED_B)
    response = await client.post(f"{API}/dags/chain/dagRuns/r/clear", json={"only_failed": True})
    assert response.status_code == 200, response.text
    assert sorted(ti["task_id"] for ti in response.json()["task_instances"]) == ["b", "c"]
    assert await _states(api_store, pk) == {
        "a": "success",
        "b": "none",
        "c": "none",
        "d": "success",
    }
    (run,) = await api_store.find_runs("r", "chain")
    assert run.state is DagRunState.QUEUED


async def test_mark_a_task_and_its_downstream_queues_the_run(
    client: httpx.AsyncClient, api_store: Store, chain: DAG
) -> None:
    pk = await _finished_run(api_store, "r", FAILED_B)
    path = f"{API}/dags/chain/dagRuns/r/taskInstances/b"
    dry = await client.patch(
        path, json={"new_state": "success", "include_downstream": True, "dry_run": True}
    )
    assert sorted(ti["task_id"] for ti in dry.json()["task_instances"]) == ["b", "c"]
    assert await _states(api_store, pk) == FAILED_B
    done = await client.patch(path, json={"new_state": "success", "include_downstream": True})
    assert done.status_code == 200, done.text
    assert set((await _states(api_store, pk)).values()) == {"success"}
    (run,) = await api_store.find_runs("r", "chain")
    assert run.state is DagRunState.QUEUED  # the scheduler settles it
    missing = await client.patch(
        f"{API}/dags/chain/dagRuns/r/taskInstances/a", json={"new_state": "failed", "map_index": 3}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("field", ["only_failed", "dry_run"])
async def test_clear_body_fields_are_typed(
    client: httpx.AsyncClient, api_store: Store, chain: DAG, field: str
) -> None:
    await _finished_run(api_store, "r", FAILED_B)
    response = await client.post(f"{API}/dags/chain/dagRuns/r/clear", json={field: "often"})
    assert response.status_code == 422
