"""Retries (try numbers, backoff) and execution_timeout for async and sync tasks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, TaskState, task
from airloop.engine.engine import Engine
from airloop.settings import Settings

from .support import state_of, ti_rows, wait_until

EPS = 0.005  # timer granularity: a delay of d is never observed as shorter than d - EPS


async def test_task_succeeds_on_its_third_try(engine: Engine) -> None:
    tries: list[int] = []

    with DAG("retry_ok") as dag:

        @task(retries=4, retry_delay=0.05)
        def flaky(try_number: int) -> str:
            tries.append(try_number)
            if try_number < 3:
                raise ConnectionError(f"not ready on try {try_number}\nmore detail")
            return f"ok on {try_number}"

        @task
        async def after(value: str) -> str:
            return value

        after(flaky())

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert tries == [1, 2, 3]
    rows = await ti_rows(engine, result.run_pk)
    row = rows["flaky", -1]
    assert (row.state, row.try_number, row.max_tries) == ("success", 3, 5)
    assert row.error is None  # cleared when the task was queued again
    assert row.next_retry_at is None
    xcoms = await engine.store.xcom_values(result.run_pk)
    assert [(x.task_id, x.value) for x in xcoms] == [
        ("flaky", '"ok on 3"'),
        ("after", '"ok on 3"'),
    ]
    logs = await engine.store.log_paths(result.run_pk)
    assert [(r.task_id, r.try_number) for r in logs if r.task_id == "flaky"] == [
        ("flaky", 1),
        ("flaky", 2),
        ("flaky", 3),
    ]


async def test_retries_exhausted_error_is_the_first_line(engine: Engine) -> None:
    tries: list[int] = []

    with DAG("retry_fail") as dag:

        @task(retries=2, retry_delay=0.02)
        async def always_fails(try_number: int) -> None:
            tries.append(try_number)
            raise ValueError(f"broken on try {try_number}\nTraceback-like second line")

        @task
        def never(x: None) -> None:
            raise AssertionError("must not run")

        never(always_fails())

    result = await engine.run(dag)

    assert tries == [1, 2, 3]
    rows = await ti_rows(engine, result.run_pk)
    row = rows["always_fails", -1]
    assert (row.state, row.try_number, row.max_tries) == ("failed", 3, 3)
    assert row.error == "ValueError: broken on try 3"
    assert rows["never", -1].state == "upstream_failed"
    assert result.state is DagRunState.FAILED
    assert result.failed == [("always_fails", "ValueError: broken on try 3")]


async def test_default_args_retries_and_explicit_override(engine: Engine) -> None:
    tries: dict[str, list[int]] = {"inherits": [], "overrides": []}

    with DAG("retry_defaults", default_args={"retries": 2, "retry_delay": 0.01}) as dag:

        @task
        def inherits(try_number: int) -> None:
            tries["inherits"].append(try_number)
            raise ValueError("x")

        @task(retries=0)
        def overrides(try_number: int) -> None:
            tries["overrides"].append(try_number)
            raise ValueError("x")

        inherits()
        overrides()

    result = await engine.run(dag)

    assert tries == {"inherits": [1, 2, 3], "overrides": [1]}
    rows = await ti_rows(engine, result.run_pk)
    assert rows["inherits", -1].try_number == 3
    assert rows["overrides", -1].try_number == 1


async def test_exponential_backoff_doubles_and_is_capped(engine: Engine) -> None:
    starts: list[float] = []

    with DAG("retry_backoff") as dag:

        @task(
            retries=5,
            retry_delay=0.04,
            retry_exponential_backoff=True,
            retry_jitter=False,
            max_retry_delay=0.1,
        )
        async def flaky(try_number: int) -> int:
            starts.append(time.monotonic())
            if try_number <= 5:
                raise ConnectionError("again")
            return try_number

        flaky()

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 5
    # 0.04, 0.08, then 0.16, 0.32, 0.64 capped at 0.1
    for gap, minimum in zip(gaps, [0.04, 0.08, 0.1, 0.1, 0.1], strict=True):
        assert gap >= minimum - EPS, gaps
    assert gaps[-1] < 0.5, gaps  # uncapped, the last delay would be 0.64 s
    rows = await ti_rows(engine, result.run_pk)
    assert rows["flaky", -1].try_number == 6


async def test_up_for_retry_row_records_next_retry_at(engine: Engine) -> None:
    """While waiting for its retry, the row says up_for_retry with next_retry_at set."""
    release = asyncio.Event()

    with DAG("retry_row") as dag:

        @task(retries=1, retry_delay=0.2)
        async def flaky(try_number: int) -> None:
            if try_number == 1:
                raise ConnectionError("first try fails")
            await release.wait()

        flaky()

    run = await engine.start_run(dag)
    await wait_until(engine, run, lambda r: state_of(r, "flaky") is TaskState.UP_FOR_RETRY)
    waiting = (await ti_rows(engine, run.run_pk))["flaky", -1]
    release.set()
    result = await run.done

    assert waiting.state == "up_for_retry"
    assert waiting.try_number == 1
    assert waiting.error == "ConnectionError: first try fails"
    assert waiting.next_retry_at is not None
    assert waiting.end_date is not None
    delay = (waiting.next_retry_at - waiting.end_date).total_seconds()
    assert 0.2 - EPS <= delay < 5
    assert result.state is DagRunState.SUCCESS
    final = (await ti_rows(engine, run.run_pk))["flaky", -1]
    assert (final.state, final.try_number, final.next_retry_at) == ("success", 2, None)


# -- execution_timeout ----------------------------------------------------------------


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_async_task_over_its_timeout_is_cancelled_and_retried(engine: Engine) -> None:
    cancelled: list[int] = []
    forever = asyncio.Event()

    with DAG("timeout_async") as dag:

        @task(execution_timeout=0.1, retries=1, retry_delay=0.02)
        async def hangs(try_number: int) -> None:
            try:
                await forever.wait()
            except asyncio.CancelledError:
                cancelled.append(try_number)
                raise

        @task(execution_timeout=5)
        async def quick() -> int:
            return 1

        hangs()
        quick()

    async with asyncio.timeout(10):
        result = await engine.run(dag)

    assert cancelled == [1, 2]
    rows = await ti_rows(engine, result.run_pk)
    row = rows["hangs", -1]
    assert (row.state, row.try_number) == ("failed", 2)
    assert row.error.startswith("TaskTimeout: ")
    assert "execution_timeout of 0.1s exceeded" in row.error
    assert rows["quick", -1].state == "success"
    assert result.state is DagRunState.FAILED


async def test_sync_task_over_its_timeout_is_abandoned(
    engine: Engine, caplog: pytest.LogCaptureFixture, thread_gate: threading.Event
) -> None:
    threads: list[threading.Thread] = []

    with DAG("timeout_sync") as dag:

        @task(execution_timeout=0.2, retries=1, retry_delay=0.01)
        def blocks() -> None:
            threads.append(threading.current_thread())
            thread_gate.wait(timeout=30)  # "sleeps" far longer than the timeout

        blocks()

    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    result = await engine.run(dag)
    elapsed = time.monotonic() - started

    assert elapsed < 10  # did not wait for the blocked threads (30 s each)
    assert len(threads) == 2
    assert all(t.is_alive() for t in threads)  # abandoned, still blocked
    assert threads[0] is not threads[1]  # the retry got a fresh thread
    rows = await ti_rows(engine, result.run_pk)
    row = rows["blocks", -1]
    assert (row.state, row.try_number) == ("failed", 2)
    assert "execution_timeout of 0.2s exceeded" in row.error
    assert "abandoned" in row.error
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "cannot be stopped and was abandoned" in r.getMessage()
    ]
    assert len(warnings) == 2
    assert "timeout_sync/" in warnings[0].getMessage()
    assert result.state is DagRunState.FAILED


async def test_timeout_does_not_count_time_queued_for_a_thread(
    tmp_path: Path, thread_gate: threading.Event
) -> None:
    """With one sync thread, 'second' queues behind 'first' for longer than its own
    execution_timeout; the timeout starts only when a thread picks it up."""
    order: list[str] = []
    first_running = threading.Event()

    with DAG("timeout_queued") as dag:

        @task(priority_weight=10)
        def first() -> None:
            order.append("first")
            first_running.set()
            thread_gate.wait(timeout=30)

        @task(execution_timeout=0.1)
        def second() -> None:
            order.append("second")

        @task
        async def opener() -> None:
            await asyncio.to_thread(first_running.wait, 10)
            await asyncio.sleep(0.3)  # the behaviour under test: 'second' queues 0.3 s > 0.1 s
            thread_gate.set()

        first()
        second()
        opener()

    async with Engine(Settings(home=tmp_path, sync_threads=1)) as engine:
        result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert order == ["first", "second"]


async def test_dagrun_timeout_fails_the_run_under_the_engine(
    engine: Engine, thread_gate: threading.Event
) -> None:
    """dagrun_timeout holds for ``airloop run`` (the Engine), not only under the service."""
    from datetime import timedelta

    cancelled = asyncio.Event()

    with DAG("bounded_run", dagrun_timeout=timedelta(seconds=0.5)) as dag:

        @task
        async def forever() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        @task
        def blocked() -> None:
            thread_gate.wait(60)

        @task
        async def after(x: None) -> None: ...

        after(forever())
        blocked()

    result = await asyncio.wait_for(engine.run(dag, run_id="r"), 15)
    assert result.state is DagRunState.FAILED
    assert cancelled.is_set(), "the running task was cancelled"
    rows = await ti_rows(engine, result.run_pk)
    note = "dagrun_timeout of 0.5s exceeded"
    assert rows["forever", -1].state == "failed"
    assert rows["forever", -1].error == f"interrupted: {note}"
    assert rows["blocked", -1].state == "failed"
    assert rows["after", -1].state in ("upstream_failed", "failed")
    (run,) = await engine.store.find_runs("r", "bounded_run")
    assert run.note == note
