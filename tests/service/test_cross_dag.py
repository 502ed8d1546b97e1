"""Cross-DAG operators under the scheduler service, in process: TriggerDagRunOperator
and ExternalTaskSensor are woken by the store's run events, not by polling (ADR 0036).

Every wait here has a poke_interval of an hour: the tests finish in seconds only if
the wake-up comes from the events (the service itself runs with a long poll interval
too, so a queued run is started because the trigger woke it).
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airloop.core.states import DagRunState, TaskState
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.records import DagRunRow
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

TARGET = """
import pathlib
from airloop import DAG, task

GATE = pathlib.Path({gate!r})
RAN = pathlib.Path({ran!r})

with DAG("target", params={{"fail": False}}) as dag:
    @task(retries=1, retry_delay=0.1)  # a try lost to a restart runs again
    async def work(params) -> str:
        import asyncio
        while not GATE.exists():
            await asyncio.sleep(0.05)
        with RAN.open("a") as f:
            f.write("ran\\n")
        if params["fail"]:
            raise ValueError("asked to fail")
        return "done"
    work()
"""

TRIGGER = """
from airloop import DAG
from airloop.operators import TriggerDagRunOperator

with DAG("controller") as dag:
    TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="target",
        trigger_run_id="{{{{ '{run_id}' }}}}",
        conf={conf},
        wait_for_completion=True,
        poke_interval=3600,
        {extra}
    )
"""

SENSOR = """
from datetime import timedelta
from airloop import DAG
from airloop.sensors import ExternalTaskSensor

with DAG("waiter") as dag:
    ExternalTaskSensor(
        task_id="wait",
        external_dag_id="target",
        external_task_id="work",
        poke_interval=3600,
        {extra}
    )
"""


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text))


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, database_url: str, **settings: Any
) -> AsyncIterator[tuple[Store, Path]]:
    """The service (polling the database only every 5 minutes) and its store: a run
    queued through it wakes the service at once, as a TriggerDagRunOperator's does."""
    cfg = Settings(
        home=tmp_path / "home",
        dags_folder=tmp_path / "dags",
        database_url=database_url,
        scheduler_poll_interval=300,
        **settings,
    )
    service = SchedulerService(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(30):
            await service.ready.wait()
        assert service.engine is not None
        yield service.engine.store, tmp_path / "gate"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - reads what the service writes
            await asyncio.sleep(0.05)


async def run_of(store: Store, dag_id: str, run_id: str) -> DagRunRow | None:
    rows = await store.find_runs(run_id, dag_id)
    return rows[0] if rows else None


async def ended(store: Store, dag_id: str, run_id: str) -> DagRunRow:
    async def done() -> bool:
        row = await run_of(store, dag_id, run_id)
        return row is not None and row.state in (DagRunState.SUCCESS, DagRunState.FAILED)

    await eventually(done)
    row = await run_of(store, dag_id, run_id)
    assert row is not None
    return row


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    write(
        folder, "target.py", TARGET.format(gate=str(tmp_path / "gate"), ran=str(tmp_path / "ran"))
    )
    return folder


def ran(tmp_path: Path) -> int:
    path = tmp_path / "ran"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("fail", [False, True])
async def test_trigger_waits_for_the_run_through_events(
    tmp_path: Path, dags: Path, database_url: str, fail: bool
) -> None:
    write(
        dags,
        "controller.py",
        TRIGGER.format(run_id="from_controller", conf={"fail": fail}, extra=""),
    )
    async with running(tmp_path, database_url) as (store, gate):
        await ServiceStore(store).queue_run("controller", "c1", {}, datetime.now(UTC))
        # The target is queued and started at once (the service polls every 5 min).
        await eventually(lambda: _state_is(store, "target", "from_controller", DagRunState.RUNNING))
        controller = await run_of(store, "controller", "c1")
        assert controller is not None
        assert controller.state is DagRunState.RUNNING
        gate.touch()
        row = await ended(store, "controller", "c1")
        target = await ended(store, "target", "from_controller")
    assert target.state is (DagRunState.FAILED if fail else DagRunState.SUCCESS)
    assert target.params == {"fail": fail}
    assert row.state is target.state
    (ti,) = await _tis(database_url, row.id)
    assert ti.state is (TaskState.FAILED if fail else TaskState.SUCCESS)
    if fail:
        assert ti.error is not None
        assert "target failed with failed state failed" in ti.error
    else:  # XComs are stored when the try succeeds
        pushed = await _xcoms(database_url, row.id)
        assert pushed["trigger_run_id"] == '"from_controller"'
        assert datetime.fromisoformat(pushed["trigger_logical_date_iso"].strip('"')) == (
            target.logical_date
        )


async def _state_is(store: Store, dag_id: str, run_id: str, state: DagRunState) -> bool:
    row = await run_of(store, dag_id, run_id)
    return row is not None and row.state is state


async def _tis(database_url: str, run_pk: int) -> list[Any]:
    store = await Store.open(database_url)
    try:
        return await store.task_instances(run_pk)
    finally:
        await store.close()


async def _xcoms(database_url: str, run_pk: int) -> dict[str, str]:
    store = await Store.open(database_url)
    try:
        return {x.key: x.value for x in await store.xcom_values(run_pk)}
    finally:
        await store.close()


async def test_reset_dag_run_runs_the_finished_target_again(tmp_path: Path, dags: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(
        dags, "controller.py", TRIGGER.format(run_id="fixed", conf={}, extra="reset_dag_run=True,")
    )
    (tmp_path / "gate").touch()
    async with running(tmp_path, url) as (store, _):
        service = ServiceStore(store)
        await service.queue_run("controller", "c1", {}, datetime(2026, 1, 1, tzinfo=UTC))
        assert (await ended(store, "controller", "c1")).state is DagRunState.SUCCESS
        assert ran(tmp_path) == 1
        # The same run id again: the finished target run is cleared and runs again.
        await service.queue_run("controller", "c2", {}, datetime(2026, 1, 2, tzinfo=UTC))
        assert (await ended(store, "controller", "c2")).state is DagRunState.SUCCESS
        assert ran(tmp_path) == 2
        targets = [r for r in await service.runs(dag_id="target")]
    assert [(r.run_id, r.state) for r in targets] == [("fixed", DagRunState.SUCCESS)]


async def test_reset_dag_run_wins_over_skip_when_already_exists(tmp_path: Path, dags: Path) -> None:
    # Airflow checks reset_dag_run first: with both set, the finished run runs again.
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    both = "reset_dag_run=True, skip_when_already_exists=True,"
    write(dags, "controller.py", TRIGGER.format(run_id="fixed", conf={}, extra=both))
    (tmp_path / "gate").touch()
    async with running(tmp_path, url) as (store, _):
        service = ServiceStore(store)
        await service.queue_run("controller", "c1", {}, datetime(2026, 1, 1, tzinfo=UTC))
        assert (await ended(store, "controller", "c1")).state is DagRunState.SUCCESS
        await service.queue_run("controller", "c2", {}, datetime(2026, 1, 2, tzinfo=UTC))
        second = await ended(store, "controller", "c2")
        (ti,) = await store.task_instances(second.id)
    assert ti.state is TaskState.SUCCESS
    assert ran(tmp_path) == 2


async def test_an_existing_run_fails_the_trigger_or_skips_it(tmp_path: Path, dags: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(dags, "controller.py", TRIGGER.format(run_id="fixed", conf={}, extra=""))
    write(
        dags,
        "skipper.py",
        TRIGGER.format(run_id="fixed", conf={}, extra="skip_when_already_exists=True,").replace(
            '"controller"', '"skipper"'
        ),
    )
    (tmp_path / "gate").touch()
    async with running(tmp_path, url) as (store, _):
        service = ServiceStore(store)
        await service.queue_run("controller", "c1", {}, datetime(2026, 1, 1, tzinfo=UTC))
        assert (await ended(store, "controller", "c1")).state is DagRunState.SUCCESS
        await service.queue_run("controller", "c2", {}, datetime(2026, 1, 2, tzinfo=UTC))
        second = await ended(store, "controller", "c2")
        await service.queue_run("skipper", "s1", {}, datetime(2026, 1, 3, tzinfo=UTC))
        skipped = await ended(store, "skipper", "s1")
        (failed_ti,) = await store.task_instances(second.id)
        (skipped_ti,) = await store.task_instances(skipped.id)
    assert second.state is DagRunState.FAILED
    assert failed_ti.error is not None
    assert "DAG 'target' already has a run 'fixed'" in failed_ti.error
    assert "reset_dag_run=True" in failed_ti.error
    assert skipped_ti.state is TaskState.SKIPPED
    assert ran(tmp_path) == 1


async def test_external_task_sensor_is_woken_when_the_task_finishes(
    tmp_path: Path, dags: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(dags, "waiter.py", SENSOR.format(extra=""))
    when = datetime(2026, 3, 1, tzinfo=UTC)
    async with running(tmp_path, url) as (store, gate):
        service = ServiceStore(store)
        # The sensor starts first: the target has no run at that date yet.
        await service.queue_run("waiter", "w1", {}, when)
        await eventually(lambda: _ti_is(store, "waiter", "w1", TaskState.RUNNING))
        await service.queue_run("target", "t1", {}, when)
        await eventually(lambda: _ti_is(store, "target", "t1", TaskState.RUNNING))
        waiter = await run_of(store, "waiter", "w1")
        assert waiter is not None
        assert waiter.state is DagRunState.RUNNING
        gate.touch()
        assert (await ended(store, "waiter", "w1")).state is DagRunState.SUCCESS


async def _ti_is(store: Store, dag_id: str, run_id: str, state: TaskState) -> bool:
    row = await run_of(store, dag_id, run_id)
    if row is None:
        return False
    return [ti.state for ti in await store.task_instances(row.id)] == [state]


async def test_external_task_sensor_fails_on_failed_states(tmp_path: Path, dags: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(dags, "waiter.py", SENSOR.format(extra='failed_states=["failed"],'))
    when = datetime(2026, 3, 1, tzinfo=UTC)
    (tmp_path / "gate").touch()
    async with running(tmp_path, url) as (store, _):
        service = ServiceStore(store)
        await service.queue_run("waiter", "w1", {}, when)
        await service.queue_run("target", "t1", {"fail": True}, when)
        row = await ended(store, "waiter", "w1")
        (ti,) = await store.task_instances(row.id)
    assert row.state is DagRunState.FAILED
    assert ti.error is not None
    assert "the external tasks ['work'] of DAG 'target' failed" in ti.error


MARKED = """
import pathlib
from airloop import DAG, task
from airloop.sensors import ExternalTaskMarker

RAN = pathlib.Path({ran!r})

with DAG("parent") as parent:
    ExternalTaskMarker(task_id="mark", external_dag_id="child", external_task_id="work")

with DAG("child") as child:
    @task
    def work() -> None:
        with RAN.open("a") as f:
            f.write("child\\n")
    work()
"""


async def test_clearing_a_marker_clears_the_external_task(tmp_path: Path, dags: Path) -> None:
    from airloop.service.markers import clear_following_markers

    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(dags, "marked.py", MARKED.format(ran=str(tmp_path / "child_ran")))
    when = datetime(2026, 4, 1, tzinfo=UTC)
    async with running(tmp_path, url) as (store, _):
        service = ServiceStore(store)
        await service.queue_run("parent", "p1", {}, when)
        await service.queue_run("child", "c1", {}, when)
        parent = await ended(store, "parent", "p1")
        assert (await ended(store, "child", "c1")).state is DagRunState.SUCCESS
        cleared = await clear_following_markers(service, parent, ["mark"], failed_only=False)
        assert cleared.counts == {("parent", "p1"): 1, ("child", "c1"): 1}
        assert cleared.notes == []
        assert (await ended(store, "parent", "p1")).state is DagRunState.SUCCESS
        assert (await ended(store, "child", "c1")).state is DagRunState.SUCCESS
    assert (tmp_path / "child_ran").read_text().splitlines() == ["child", "child"]


async def test_a_resumed_trigger_waits_for_the_run_it_queued(tmp_path: Path, dags: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
    write(dags, "controller.py", TRIGGER.format(run_id="t1", conf={}, extra=""))
    async with running(tmp_path, url, shutdown_grace_seconds=0.2) as (store, gate):
        await ServiceStore(store).queue_run("controller", "c1", {}, datetime.now(UTC))
        await eventually(lambda: _state_is(store, "target", "t1", DagRunState.RUNNING))
    # The service stopped while both ran (left for the next start); it starts again.
    async with running(tmp_path, url) as (store, gate):
        gate.touch()
        row = await ended(store, "controller", "c1")
        (ti,) = await store.task_instances(row.id)
        targets = await ServiceStore(store).runs(dag_id="target")
    assert row.state is DagRunState.SUCCESS
    assert ti.try_number == 1  # the same try, resumed through its checkpoint
    assert [(r.run_id, r.state) for r in targets] == [("t1", DagRunState.SUCCESS)]
