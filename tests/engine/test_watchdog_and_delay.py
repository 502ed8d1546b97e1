"""The blocked-loop watchdog names the culprit; delay() sleeps the right way everywhere."""

from __future__ import annotations

import asyncio
import logging
import sysconfig
import threading
import time
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, delay, task
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine
from airloop.engine.watchdog import Frame, classify
from airloop.runtime import BlockingOnLoopError
from airloop.settings import Settings
from airloop.store.records import WriteBatch


async def test_a_blocking_call_in_an_async_task_is_reported_with_its_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DAG("blocky") as dag:

        @task
        async def polite() -> None:
            await asyncio.sleep(0.05)

        @task
        async def rude() -> None:
            time.sleep(1)  # noqa: ASYNC251 - the point: it blocks the event loop

        polite()
        rude()

    caplog.set_level(logging.WARNING, logger="airloop.engine.watchdog")
    settings = Settings(home=tmp_path, loop_block_threshold=0.2, use_async=True)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        watchdog = engine.watchdog
        assert watchdog is not None
        assert result.state is DagRunState.SUCCESS
        label = f"blocky/{result.run_id}/rude try 1"
        assert watchdog.blocks_by_culprit[label] == 1
        assert watchdog.blocked_count == 1
        (block,) = watchdog.blocks
        assert block.seconds >= 0.9
        assert "test_watchdog_and_delay.py" in block.location
        assert watchdog.max_lag >= 0.9
    warnings = [r.getMessage() for r in caplog.records if "blocked" in r.getMessage()]
    assert len(warnings) == 1
    assert label in warnings[0]
    assert "make it a sync task" in warnings[0], "the user's code is at fault: advice"
    assert block.cause == "task"


async def test_airloop_blocking_its_own_loop_is_reported_as_airloops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow path in the scheduler (outside any task's code) is airloop's, not the task's."""
    original = ActiveRun.flush
    slowed = threading.Event()

    def slow_flush(self: ActiveRun, batch: WriteBatch) -> None:
        if not slowed.is_set():
            slowed.set()
            time.sleep(1)  # the point: airloop's own code blocks the loop
        original(self, batch)

    monkeypatch.setattr(ActiveRun, "flush", slow_flush)
    with DAG("innocent") as dag:

        @task
        async def waits() -> None:
            await asyncio.sleep(0.01)

        waits()

    caplog.set_level(logging.WARNING, logger="airloop.engine.watchdog")
    settings = Settings(home=tmp_path, loop_block_threshold=0.2, use_async=True)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        watchdog = engine.watchdog
        assert watchdog is not None
        assert result.state is DagRunState.SUCCESS
        (block,) = watchdog.blocks
        assert block.cause == "airloop"
        assert "slow_flush" in block.location
    (warning,) = [r.getMessage() for r in caplog.records if "blocked" in r.getMessage()]
    assert warning.startswith("airloop blocked the event loop for "), warning
    assert "test_watchdog_and_delay:slow_flush (" in warning, "names the place"
    assert "called by airloop.engine.scheduler:_plan (" in warning
    assert "innocent/" not in warning, "the task is not blamed"
    assert "make it a sync task" not in warning, "no advice to the user"


async def test_sync_tasks_do_not_block_the_loop(tmp_path: Path) -> None:
    with DAG("sleepy") as dag:

        @task
        def sleeps() -> None:
            time.sleep(0.6)  # in a worker thread: fine

        sleeps()

    async with Engine(Settings(home=tmp_path, loop_block_threshold=0.2)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS
        assert engine.watchdog is not None
        assert engine.watchdog.blocked_count == 0


async def test_delay_awaits_asyncio_sleep_in_async_code() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    other = asyncio.create_task(ticker())
    await delay(0.2)
    other.cancel()
    assert ticks >= 5, "the loop ran other work while delay() waited"


def test_delay_sleeps_in_sync_code_off_the_loop() -> None:
    started = time.monotonic()
    delay(0.1)
    assert time.monotonic() - started >= 0.1
    # In a worker thread while a loop runs elsewhere, too:
    done = threading.Event()

    def worker() -> None:
        delay(0.05)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert done.is_set()


async def test_delay_refuses_to_block_the_loop_from_sync_code() -> None:
    def sync_helper() -> None:
        delay(1)

    started = time.monotonic()
    with pytest.raises(BlockingOnLoopError, match=r"sync_helper .* on the event loop's thread"):
        sync_helper()
    assert time.monotonic() - started < 0.5


async def test_delay_in_tasks_on_every_kind(tmp_path: Path) -> None:
    with DAG("delays") as dag:

        @task
        async def a() -> str:
            await delay(0.05)
            return "async"

        @task
        def s() -> str:
            delay(0.05)
            return "sync"

        a()
        s()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        assert engine.watchdog is not None
        assert engine.watchdog.blocked_count == 0


def test_delay_rejects_negative_seconds() -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        delay(-1)


LIB = sysconfig.get_paths()["purelib"]
STD = sysconfig.get_paths()["stdlib"]
LOOP = [Frame("asyncio.events", "_run", f"{STD}/asyncio/events.py", 80)]
RUNNER = Frame("airloop.executors.runner", "run", "/src/airloop/engine/runner.py", 190)
USER = Frame("etl", "extract", "/dags/etl.py", 12)


@pytest.mark.parametrize(
    ("stack", "task_name", "cause", "place"),
    [
        # The user's async task blocks (directly or inside a library it calls).
        ([USER, RUNNER, *LOOP], "etl/r/extract try 1", "task", "etl:extract"),
        (
            [Frame("requests.api", "get", f"{LIB}/requests/api.py", 3), USER, RUNNER, *LOOP],
            "etl/r/extract try 1",
            "task",
            "etl:extract",
        ),
        # Task code living entirely in an installed package, called by the Runner.
        (
            [Frame("theirpkg.ops", "execute", f"{LIB}/theirpkg/ops.py", 9), RUNNER, *LOOP],
            "etl/r/x try 1",
            "task",
            "theirpkg.ops:execute",
        ),
        # An operator shipped with airloop blocks: airloop's code, though in a task.
        (
            [
                Frame("json.encoder", "encode", f"{STD}/json/encoder.py", 200),
                Frame("airloop.providers.aws.batch", "execute", "/src/airloop/b.py", 40),
                RUNNER,
                *LOOP,
            ],
            "etl/r/submit try 1",
            "airloop",
            "airloop.providers.aws.batch:execute",
        ),
        # airloop importing a library on the loop (a Dask executor starting).
        (
            [
                Frame("importlib._bootstrap", "_load", "<frozen importlib._bootstrap>", 1),
                Frame("airloop.executors.dask_executor", "start", "/src/airloop/d.py", 50),
                *LOOP,
            ],
            "etl/r/crunch try 1",
            "airloop",
            "airloop.executors.dask_executor:start",
        ),
        # The scheduler's own work (SQLAlchemy under it): airloop's.
        (
            [
                Frame("sqlalchemy.sql.compiler", "visit", f"{LIB}/sqlalchemy/c.py", 1),
                Frame("airloop.store.repository", "write", "/src/airloop/store/r.py", 9),
                Frame("airloop.engine.scheduler", "_tick", "/src/airloop/engine/s.py", 9),
                *LOOP,
            ],
            "airloop-scheduler",
            "airloop",
            "airloop.store.repository:write",
        ),
        # A library callback run by the loop outside any task (uvicorn's protocol
        # parsing a request in standalone): the CLI frame that started the loop is not
        # a culprit.
        (
            [
                Frame("h11._readers", "read", f"{LIB}/h11/_readers.py", 70),
                Frame("uvicorn.protocols.http", "data_received", f"{LIB}/uvicorn/h.py", 9),
                *LOOP,
                Frame("asyncio.base_events", "_run_once", f"{STD}/asyncio/base_events.py", 1),
                Frame("airloop.api.standalone", "run_standalone", "/src/airloop/api/s.py", 9),
            ],
            None,
            "library",
            "h11._readers:read",
        ),
        # Nothing but library frames: nobody to blame but the library.
        (LOOP, None, "library", "asyncio.events:_run"),
        ([], None, "library", "unknown"),
    ],
)
def test_the_watchdog_blames_whose_code_is_on_the_stack(
    stack: list[Frame], task_name: str | None, cause: str, place: str
) -> None:
    found, location = classify(stack, task_name)
    assert found == cause
    assert location.startswith(place)
