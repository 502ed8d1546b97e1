"""Changes made through the API reach a real scheduler service on the same database:
a triggered run runs, a cleared failed task runs again and succeeds, a task marked
success lets its run settle, a pool resized is taken live (on every backend)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest_asyncio

from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.run_requests import requests_of
from airloop.store.runs import Store

from .writes_support import eventually, scheduler, scheduler_settings, write_dag

API = "/api/v1"

FLAKY = """
from pathlib import Path
from airloop import DAG, task

MARK = Path({mark!r})

with DAG("flaky", params={{"n": 1}}) as dag:
    @task
    def first(params) -> int:
        return params["n"]

    @task
    def flaky(n: int) -> int:
        if not MARK.exists():
            MARK.write_text("failed once")
            raise RuntimeError("the first try fails")
        return n + 1

    @task
    def after() -> str:
        return "done"  # no XCom pulled: it also runs after 'flaky' is marked success

    flaky(first()) >> after()
"""

POOLED = """
import time
from pathlib import Path
from airloop import DAG, task

FOLDER = Path({folder!r})

with DAG("pooled") as dag:
    @task(pool="narrow")
    def hold(name: str) -> str:
        (FOLDER / f"started-{{name}}").write_text("")
        while not (FOLDER / "release").exists():
            time.sleep(0.05)
        return name

    hold.override(task_id="one")("one")
    hold.override(task_id="two")("two")
"""


@pytest_asyncio.fixture
async def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return scheduler_settings(tmp_path, database_url)


def _run_state(store: Store, dag_id: str, run_id: str, *states: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        found = await store.find_runs(run_id, dag_id)
        return bool(found) and found[0].state.value in states

    return check


async def _ti_states(store: Store, dag_id: str, run_id: str) -> dict[str, str]:
    (run,) = await store.find_runs(run_id, dag_id)
    return {ti.task_id: ti.state.value for ti in await store.task_instances(run.id)}


async def test_trigger_then_clear_a_failed_task_and_it_runs_again(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    write_dag(tmp_path / "dags", "flaky.py", FLAKY.format(mark=str(tmp_path / "mark")))
    async with scheduler(api_settings):
        triggered = await client.post(
            f"{API}/dags/flaky/dagRuns", json={"run_id": "r1", "conf": {"n": 4}}
        )
        assert triggered.status_code == 201, triggered.text
        await eventually(_run_state(api_store, "flaky", "r1", "failed"))
        assert await _ti_states(api_store, "flaky", "r1") == {
            "first": "success",
            "flaky": "failed",
            "after": "upstream_failed",
        }
        cleared = await client.post(
            f"{API}/dags/flaky/clearTaskInstances",
            json={
                "dag_run_id": "r1",
                "task_ids": ["flaky"],
                "include_downstream": True,
                "only_failed": True,
            },
        )
        assert cleared.status_code == 200, cleared.text
        assert sorted(ti["task_id"] for ti in cleared.json()["task_instances"]) == [
            "after",
            "flaky",
        ]
        await eventually(_run_state(api_store, "flaky", "r1", "success"))
        assert set((await _ti_states(api_store, "flaky", "r1")).values()) == {"success"}
        (run,) = await api_store.find_runs("r1", "flaky")
        assert run.params == {"n": 4}


async def test_mark_a_failed_task_success_and_the_run_settles(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    write_dag(tmp_path / "dags", "flaky.py", FLAKY.format(mark=str(tmp_path / "mark")))
    async with scheduler(api_settings):
        await client.post(f"{API}/dags/flaky/dagRuns", json={"run_id": "r1", "conf": {}})
        await eventually(_run_state(api_store, "flaky", "r1", "failed"))
        marked = await client.patch(
            f"{API}/dags/flaky/dagRuns/r1/taskInstances/flaky", json={"new_state": "success"}
        )
        assert marked.status_code == 200, marked.text
        # 'after' was upstream_failed and stays so (as in Airflow: clear it to run it);
        # the run is settled again by the scheduler from the states as marked.
        await eventually(_run_state(api_store, "flaky", "r1", "failed", "success"))
        assert (await _ti_states(api_store, "flaky", "r1"))["flaky"] == "success"
        cleared = await client.post(
            f"{API}/dags/flaky/clearTaskInstances",
            json={"dag_run_id": "r1", "task_ids": ["after"]},
        )
        assert cleared.status_code == 200, cleared.text
        await eventually(_run_state(api_store, "flaky", "r1", "success"))


async def test_a_pool_resized_through_the_api_is_taken_live(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    write_dag(tmp_path / "dags", "pooled.py", POOLED.format(folder=str(folder)))
    created = await client.post(f"{API}/pools", json={"name": "narrow", "slots": 1})
    assert created.status_code == 201, created.text
    async with scheduler(api_settings):
        triggered = await client.post(f"{API}/dags/pooled/dagRuns", json={"run_id": "r"})
        assert triggered.status_code == 201, triggered.text

        async def one_running() -> bool:
            pool = (await client.get(f"{API}/pools/narrow")).json()
            return pool["running"] == 1 and pool["scheduled"] == 1

        await eventually(one_running)
        # One slot: the other task instance waits for it.
        assert len(list(folder.glob("started-*"))) == 1
        assert sorted((await _ti_states(api_store, "pooled", "r")).values()) == [
            "running",
            "scheduled",
        ]
        resized = await client.patch(f"{API}/pools/narrow", json={"slots": 2})
        assert resized.status_code == 200

        async def both_started() -> bool:
            return len(list(folder.glob("started-*"))) == 2

        await eventually(both_started)
        pool = (await client.get(f"{API}/pools/narrow")).json()
        assert (pool["slots"], pool["running"] + pool["queued"]) == (2, 2)
        (folder / "release").write_text("")
        await eventually(_run_state(api_store, "pooled", "r", "success"))


HOLD = """
import time
from pathlib import Path
from airloop import DAG, task

FOLDER = Path({folder!r})

with DAG("hold") as dag:
    @task
    def wait() -> None:
        (FOLDER / "started").write_text("")
        while not (FOLDER / "release").exists():
            time.sleep(0.05)

    @task
    def later() -> None: ...

    wait() >> later()
"""


async def test_marking_a_running_run_failed_stops_it(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    write_dag(tmp_path / "dags", "hold.py", HOLD.format(folder=str(folder)))
    async with scheduler(api_settings):
        await client.post(f"{API}/dags/hold/dagRuns", json={"run_id": "r"})

        async def started() -> bool:
            return (folder / "started").exists()

        await eventually(started)
        await eventually(_run_state(api_store, "hold", "r", "running"))
        marked = await client.patch(f"{API}/dags/hold/dagRuns/r", json={"state": "failed"})
        assert marked.status_code == 202, marked.text
        await eventually(_run_state(api_store, "hold", "r", "failed"))
        (run,) = await api_store.find_runs("r", "hold")

        async def applied() -> bool:
            return all(r.done_at is not None for r in await requests_of(api_store, run.id))

        await eventually(applied)
        (asked,) = await requests_of(api_store, run.id)
        assert asked.outcome == "marked failed"
        # Stopped as a failing task stops a run: what ran failed, what follows too.
        assert await _ti_states(api_store, "hold", "r") == {
            "wait": "failed",
            "later": "upstream_failed",
        }
        (folder / "release").write_text("")  # the thread of the cancelled task ends


async def test_marking_a_queued_run_success(
    client: httpx.AsyncClient, api_store: Store, api_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "signals"
    folder.mkdir()
    write_dag(tmp_path / "dags", "hold.py", HOLD.format(folder=str(folder)))
    async with scheduler(api_settings) as service:
        await eventually(lambda: _known(service, "hold"))
        paused = await client.patch(f"{API}/dags/hold", json={"is_paused": True})
        assert paused.status_code == 200, paused.text
        await client.post(f"{API}/dags/hold/dagRuns", json={"run_id": "r"})
        marked = await client.patch(f"{API}/dags/hold/dagRuns/r", json={"state": "success"})
        assert marked.status_code == 202, marked.text
        await eventually(_run_state(api_store, "hold", "r", "success"))
    assert not (folder / "started").exists()


async def _known(service: SchedulerService, dag_id: str) -> bool:
    return dag_id in service.state.dags
