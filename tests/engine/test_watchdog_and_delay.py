"""The blocked-loop watchdog names the culprit; delay() sleeps the right way everywhere."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, delay, task
from airloop.engine.engine import Engine
from airloop.runtime import BlockingOnLoopError
from airloop.settings import Settings


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
    async with Engine(Settings(home=tmp_path, loop_block_threshold=0.2)) as engine:
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
