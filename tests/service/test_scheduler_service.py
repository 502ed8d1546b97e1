"""The scheduler service, in process: schedules, catch-up, import errors, triggers,
pause, file changes, the single-instance guard."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from airloop.service.scheduler_service import (
    SchedulerAlreadyRunning,
    SchedulerService,
    single_instance,
)
from airloop.settings import Settings
from airloop.store.repository import ServiceStore, Store

DAILY = """
from datetime import datetime, UTC
from airloop import DAG, task

with DAG("daily", schedule="@daily", start_date=datetime(2026, 11, 1, tzinfo=UTC),
         end_date=datetime(2026, 11, 5, tzinfo=UTC), catchup={catchup}) as dag:
    @task
    def hello(ds, data_interval_start, data_interval_end) -> list[str]:
        return [ds, data_interval_start.isoformat(), data_interval_end.isoformat()]
    hello()
"""

MANUAL = """
from airloop import DAG, task

with DAG("manual", params={{"n": 1}}) as dag:
    @task
    def {name}(params) -> int:
        return params["n"]
    {name}()
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[SchedulerService, Path]]:
    cfg = Settings(
        home=tmp_path / "home",
        dags_folder=tmp_path / "dags",
        scheduler_poll_interval=0.2,
        **settings,
    )
    service = SchedulerService(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(30):
            await service.ready.wait()
        yield service, tmp_path / "home" / "airloop.db"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    """The service runs in this loop but is driven by its own clock: poll briefly."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - it reads the database the service writes
            await asyncio.sleep(0.05)


async def runs(db: Path) -> list[Any]:
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        return await ServiceStore(store).runs()
    finally:
        await store.close()


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


async def test_catchup_creates_exactly_the_missed_runs(tmp_path: Path, dags: Path) -> None:
    write(dags, "daily.py", DAILY.format(catchup=True))
    async with running(tmp_path) as (_service, db):
        await eventually(lambda: _all_done(db, 5))
    done = sorted(await runs(db), key=lambda r: r.logical_date)
    # start 11-01, end_date 11-05: intervals starting 01..05 -> 5 runs, oldest first.
    assert [r.logical_date.day for r in done] == [1, 2, 3, 4, 5]
    assert {r.run_type for r in done} == {"scheduled"}
    assert {r.state for r in done} == {"success"}
    assert all(r.data_interval_end.day == r.logical_date.day + 1 for r in done)


async def _all_done(db: Path, n: int) -> bool:
    rows = await runs(db)
    return len(rows) == n and all(r.state == "success" for r in rows)


async def test_without_catchup_only_the_latest_interval_runs(tmp_path: Path, dags: Path) -> None:
    write(dags, "daily.py", DAILY.format(catchup=False))
    async with running(tmp_path) as (_, db):
        await eventually(lambda: _all_done(db, 1))
    (only,) = await runs(db)
    assert only.logical_date.day == 5


async def test_a_broken_file_is_an_import_error_and_the_others_still_run(
    tmp_path: Path, dags: Path
) -> None:
    write(dags, "broken.py", "import nothing_such_module_here\n")
    write(dags, "daily.py", DAILY.format(catchup=False))
    async with running(tmp_path) as (_service, db):
        await eventually(lambda: _all_done(db, 1))
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            (error,) = await ServiceStore(store).import_errors()
        finally:
            await store.close()
    assert error.fileloc.endswith("broken.py")
    assert "ModuleNotFoundError" in error.message
    assert error.line == 1


async def test_trigger_pause_and_edit_while_the_service_runs(tmp_path: Path, dags: Path) -> None:
    from datetime import UTC, datetime

    write(dags, "manual.py", MANUAL.format(name="first"))
    async with running(tmp_path) as (service, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            service_store = ServiceStore(store)
            await service_store.queue_run("manual", "t1", {"n": 7}, datetime.now(UTC))
            await eventually(lambda: _states(db, {"t1": "success"}))
            # Edit the file: the change is picked up (the task is renamed).
            write(dags, "manual.py", MANUAL.format(name="second"))
            await eventually(lambda: _task_ids(service, "manual", ["second"]), within=10)
            # Pause: triggered runs wait; unpause: they start.
            await service_store.set_paused("manual", True)
            await service_store.queue_run("manual", "t2", {"n": 8}, datetime.now(UTC))
            await asyncio.sleep(1.0)  # several poll intervals: it must NOT start
            assert await _states(db, {"t2": "queued"})
            await service_store.set_paused("manual", False)
            await eventually(lambda: _states(db, {"t2": "success"}))
        finally:
            await store.close()


async def _states(db: Path, expected: dict[str, str]) -> bool:
    by_id = {r.run_id: r.state for r in await runs(db)}
    return all(by_id.get(k) == v for k, v in expected.items())


async def _task_ids(service: SchedulerService, dag_id: str, ids: list[str]) -> bool:
    dag = service.state.dags.get(dag_id)
    return dag is not None and dag.task_ids == ids


def test_one_scheduler_per_sqlite_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with (
        single_instance(settings),
        pytest.raises(SchedulerAlreadyRunning, match="another scheduler"),
        single_instance(settings),
    ):
        pass
