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

from airloop.core.states import TaskState
from airloop.service.scheduler_service import (
    SchedulerAlreadyRunning,
    SchedulerService,
    single_instance,
)
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

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
        **{"scheduler_poll_interval": 0.2, **settings},
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
    database = str(tmp_path / "airloop.db")
    with (
        single_instance(database),
        pytest.raises(SchedulerAlreadyRunning, match="another scheduler"),
        single_instance(database),
    ):
        pass


DYNAMIC = """
import json, pathlib
from airloop import DAG, task

CONFIG = pathlib.Path(__file__).with_name("tables.json")

with DAG("dynamic") as dag:
    for table in json.loads(CONFIG.read_text()):
        @task(task_id=f"load_{table}")
        def load() -> None: ...
        load()
"""


async def test_a_dag_that_changes_without_its_file_changing_is_reparsed(
    tmp_path: Path, dags: Path
) -> None:
    (dags / "tables.json").write_text('["a"]')
    write(dags, "dynamic.py", DYNAMIC)
    async with running(tmp_path, dag_reparse_interval=0.5) as (service, _):
        assert service.state.dags["dynamic"].task_ids == ["load_a"]
        # The config changes, the DAG file does not (and .json is not a DAG file).
        (dags / "tables.json").write_text('["a", "b"]')
        await eventually(lambda: _task_ids(service, "dynamic", ["load_a", "load_b"]), within=10)


CRASHY = """
import asyncio
from airloop import DAG, task

with DAG("crashy", default_args={"retries": 1, "retry_delay": 0.1}) as dag:
    @task
    async def slow(i: int) -> int:
        await asyncio.sleep(3)
        return i
    slow.expand(i=list(range(5)))
"""


async def test_sigkill_mid_run_then_restart_accounts_for_every_task_instance(
    tmp_path: Path, dags: Path
) -> None:
    import os
    import signal
    import sqlite3
    import sys
    from datetime import UTC, datetime

    write(dags, "crashy.py", CRASHY)
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home"),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.2",
    }
    db = tmp_path / "home" / "airloop.db"

    async def service() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airloop", "scheduler", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    def states() -> dict[str, str]:
        if not db.exists():
            return {}
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            try:
                rows = conn.execute(
                    "SELECT task_id, map_index, state FROM task_instance"
                ).fetchall()
            except sqlite3.OperationalError:
                return {}
        return {f"{t}[{i}]": s for t, i, s in rows}

    first = await service()
    await eventually(lambda: _ready_db(db), within=30)
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        await ServiceStore(store).queue_run("crashy", "r1", {}, datetime.now(UTC))
    finally:
        await store.close()

    async def some_running() -> bool:
        return list((await asyncio.to_thread(states)).values()).count("running") >= 3

    await eventually(some_running, within=30)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert "running" in (await asyncio.to_thread(states)).values()

    second = await service()
    try:

        async def finished() -> bool:
            values = (await asyncio.to_thread(states)).values()
            return bool(values) and set(values) == {"success"}

        await eventually(finished, within=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    final = await asyncio.to_thread(states)
    assert len(final) == 5
    # Lost while running, retried under the retry policy (try 2), nothing left behind.
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tries = {t for (t,) in conn.execute("SELECT try_number FROM task_instance")}
        errors = {e for (e,) in conn.execute("SELECT state FROM dag_run")}
    assert tries == {2}
    assert errors == {"success"}


async def _ready_db(db: Path) -> bool:
    return await asyncio.to_thread(_has_heartbeat, db)


def _has_heartbeat(db: Path) -> bool:
    import sqlite3

    if not db.exists():
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return bool(conn.execute("SELECT count(*) FROM scheduler_heartbeat").fetchone()[0])
        except sqlite3.OperationalError:
            return False


FLAKY = """
import pathlib
from airloop import DAG, task

MARKER = pathlib.Path(__file__).with_name("fixed")

with DAG("flaky") as dag:
    @task
    def items() -> list[int]:
        return [1, 2, 3]

    @task
    def check(x: int) -> int:
        if x == 2 and not MARKER.exists():
            raise RuntimeError("not fixed yet")
        return x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    total(check.expand(x=items()))
"""


async def test_clear_failed_tasks_and_the_service_runs_them_again(
    tmp_path: Path, dags: Path
) -> None:
    from datetime import UTC, datetime

    write(dags, "flaky.py", FLAKY)
    async with running(tmp_path) as (_, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            service_store = ServiceStore(store)
            await service_store.queue_run("flaky", "r", {}, datetime.now(UTC))
            await eventually(lambda: _states(db, {"r": "failed"}))
            (dags / "fixed").write_text("")  # the cause is fixed
            (run,) = await service_store.runs(dag_id="flaky")
            cleared = await service_store.clear(run.id, None, failed_only=True)
            assert cleared == 2  # check[1] failed, total upstream_failed
            await eventually(lambda: _states(db, {"r": "success"}))
            values = {
                x.task_id: x.value for x in await store.xcom_values(run.id) if x.map_index < 0
            }
            tries = {
                (t.task_id, t.map_index): t.try_number for t in await store.task_instances(run.id)
            }
        finally:
            await store.close()
    assert values["total"] == "6"
    # Only the failed instance ran again; the successful ones kept their results.
    assert tries[("check", 0)] == 1
    assert tries[("check", 2)] == 1
    assert tries[("check", 1)] == 2


async def test_backfill_runs_are_queued_and_run_with_their_intervals(
    tmp_path: Path, dags: Path
) -> None:
    from datetime import UTC, datetime

    from airloop.core.schedules import due_intervals

    write(dags, "daily.py", DAILY.format(catchup=False))
    async with running(tmp_path) as (service, db):
        await eventually(lambda: _all_done(db, 1))  # the latest interval, scheduled
        dag = service.state.dags["daily"]
        assert dag.timetable is not None
        intervals = due_intervals(
            dag.timetable,
            start_date=datetime(2026, 11, 1, tzinfo=UTC),
            end_date=datetime(2026, 11, 3, tzinfo=UTC),
            after=None,
            now=datetime.now(UTC),
            catchup=True,
        )
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            for i in intervals:
                await ServiceStore(store).queue_run(
                    "daily", f"backfill__{i.start.isoformat()}", {}, i.start,
                    run_type="backfill", data_interval=(i.start, i.end),
                )  # fmt: skip
        finally:
            await store.close()
        await eventually(lambda: _all_done(db, 4))
    backfills = sorted(r.logical_date.day for r in await runs(db) if r.run_type == "backfill")
    assert backfills == [1, 2, 3]


GRACEFUL = """
import asyncio
from airloop import DAG, task

with DAG("graceful", default_args={"retries": 1, "retry_delay": 0.1}) as dag:
    @task
    async def quick() -> str:
        await asyncio.sleep(0.8)
        return "done"

    @task
    async def long(try_number: int) -> int:
        if try_number == 1:
            await asyncio.sleep(60)
        return try_number

    quick()
    long()
"""


async def test_sigterm_lets_running_tasks_finish_within_the_grace_then_keeps_the_rest(
    tmp_path: Path, dags: Path
) -> None:
    from datetime import UTC, datetime

    write(dags, "graceful.py", GRACEFUL)
    async with running(tmp_path, shutdown_grace_seconds=2.0) as (service, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            await ServiceStore(store).queue_run("graceful", "g", {}, datetime.now(UTC))
        finally:
            await store.close()

        async def both_running() -> bool:
            return all(
                any(r.state_of(k) is TaskState.RUNNING for k in r.keys(t))
                for r in service.active.values()
                for t in ("quick", "long")
            ) and bool(service.active)

        await eventually(both_running)
        # Leaving the block stops the service, as SIGTERM does.
    rows = await _ti_states(db)
    assert rows == {"quick": ("success", 1), "long": ("running", 1)}
    assert await _states(db, {"g": "running"})  # kept for the next start
    # The next start resumes the run: the interrupted task is retried (try 2) and succeeds.
    async with running(tmp_path) as (_, db):
        await eventually(lambda: _states(db, {"g": "success"}))
    assert (await _ti_states(db))["long"] == ("success", 2)


async def _ti_states(db: Path) -> dict[str, tuple[str, int]]:
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        (run,) = await ServiceStore(store).runs(dag_id="graceful")
        return {t.task_id: (t.state, t.try_number) for t in await store.task_instances(run.id)}
    finally:
        await store.close()


TIMEOUT = """
import asyncio
from datetime import timedelta
from airloop import DAG, task

with DAG("bounded", dagrun_timeout=timedelta(seconds=1)) as dag:
    @task
    async def forever() -> None:
        await asyncio.sleep(60)

    @task
    async def after(x: None) -> None: ...

    after(forever())
"""


async def test_dagrun_timeout_fails_the_run(tmp_path: Path, dags: Path) -> None:
    from datetime import UTC, datetime

    write(dags, "bounded.py", TIMEOUT)
    async with running(tmp_path) as (_, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            await ServiceStore(store).queue_run("bounded", "b", {}, datetime.now(UTC))
        finally:
            await store.close()
        await eventually(lambda: _states(db, {"b": "failed"}), within=15)
    (run,) = [r for r in await runs(db) if r.run_id == "b"]
    assert run.note == "dagrun_timeout of 1s exceeded"


async def test_a_deleted_files_dags_stop_being_scheduled_and_keep_their_history(
    tmp_path: Path, dags: Path
) -> None:
    from datetime import UTC, datetime

    path = write(dags, "manual.py", MANUAL.format(name="only"))
    async with running(tmp_path) as (service, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            service_store = ServiceStore(store)
            await service_store.queue_run("manual", "before", {}, datetime.now(UTC))
            await eventually(lambda: _states(db, {"before": "success"}))
            path.unlink()
            await eventually(lambda: _gone(service, "manual"), within=10)
            await service_store.queue_run("manual", "after", {}, datetime.now(UTC))
            await asyncio.sleep(1.0)  # five poll intervals: no DAG, so it is not started
            assert await _states(db, {"before": "success", "after": "queued"})
        finally:
            await store.close()


async def _gone(service: SchedulerService, dag_id: str) -> bool:
    return dag_id not in service.state.dags


ONE_AT_A_TIME = """
import asyncio
from airloop import DAG, task

with DAG("one_at_a_time", max_active_runs=1) as dag:
    @task
    async def work() -> None:
        await asyncio.sleep(0.3)
    work()
"""


async def test_triggered_runs_respect_max_active_runs_oldest_first(
    tmp_path: Path, dags: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    write(dags, "one.py", ONE_AT_A_TIME)
    async with running(tmp_path) as (_, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            now = datetime.now(UTC)
            for i in range(3):
                await ServiceStore(store).queue_run(
                    "one_at_a_time", f"r{i}", {}, now + timedelta(seconds=i)
                )
        finally:
            await store.close()
        most = 0
        order: list[str] = []
        async with asyncio.timeout(30):
            while True:
                rows = await runs(db)
                states = {r.run_id: r.state for r in rows}
                most = max(most, list(states.values()).count("running"))
                for r in rows:
                    if r.state == "running" and r.run_id not in order:
                        order.append(r.run_id)
                if all(s == "success" for s in states.values()) and len(states) == 3:
                    break
                await asyncio.sleep(0.02)
    assert most == 1
    assert order == ["r0", "r1", "r2"]


async def test_a_running_run_cannot_be_cleared(tmp_path: Path, dags: Path) -> None:
    from datetime import UTC, datetime

    from airloop.exceptions import RunExistsError

    write(dags, "one.py", ONE_AT_A_TIME.replace("0.3", "5"))
    async with running(tmp_path) as (_, db):
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            service_store = ServiceStore(store)
            await service_store.queue_run("one_at_a_time", "busy", {}, datetime.now(UTC))
            await eventually(lambda: _states(db, {"busy": "running"}))
            (run,) = await service_store.runs(dag_id="one_at_a_time")
            with pytest.raises(RunExistsError, match="the run is running"):
                await service_store.clear(run.id, None, failed_only=False)
        finally:
            await store.close()
