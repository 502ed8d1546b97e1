"""Per-try task log files and the task_log rows that point at them."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.engine.engine import Engine
from airloop.settings import Settings


async def test_each_try_has_its_own_log_file(tmp_path: Path) -> None:
    class Classic(BaseOperator):
        def execute(self, context: Context) -> None:
            context["log"].info("classic says hi via context")

    with DAG("logs_dag") as dag:

        @task
        def talkative(**context: Any) -> None:
            context["log"].info("line via context['log']")
            logging.getLogger("user").warning("line via the user logger")

        @task
        async def with_log_param(log: logging.Logger) -> None:
            log.info("line via the log parameter")
            logging.getLogger("user.async").error("async user error line")

        @task(retries=1, retry_delay=0.01)
        def flaky(try_number: int) -> None:
            raise RuntimeError(f"kaboom on try {try_number}")

        @task
        async def mapped(x: int, log: logging.Logger) -> None:
            log.info("mapped element %s", x)

        talkative()
        with_log_param()
        flaky()
        mapped.expand(x=[10, 20])
        Classic(task_id="classic")

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="run1")
        log_rows = await engine.store.log_paths(result.run_pk)
    # The writer thread has flushed and stopped: the files are complete.

    root = tmp_path / "logs" / "logs_dag" / "run1"
    expected = {
        ("talkative", -1, 1): root / "talkative" / "1.log",
        ("with_log_param", -1, 1): root / "with_log_param" / "1.log",
        ("flaky", -1, 1): root / "flaky" / "1.log",
        ("flaky", -1, 2): root / "flaky" / "2.log",
        ("mapped", 0, 1): root / "mapped" / "0" / "1.log",
        ("mapped", 1, 1): root / "mapped" / "1" / "1.log",
        ("classic", -1, 1): root / "classic" / "1.log",
    }
    assert result.state is DagRunState.FAILED
    assert {(r.task_id, r.map_index, r.try_number): Path(r.path) for r in log_rows} == expected
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.log")) == sorted(
        p.relative_to(root).as_posix() for p in expected.values()
    )

    def text(key: tuple[str, int, int]) -> str:
        return expected[key].read_text()

    for key in expected:
        task_id, map_index, try_number = key
        label = f"logs_dag/run1/{task_id}{'' if map_index < 0 else f'[{map_index}]'}"
        assert f"INFO airloop.task - starting {label} try {try_number} on " in text(key), key

    talk = text(("talkative", -1, 1))
    assert "INFO airloop.task - line via context['log']" in talk
    assert "WARNING user - line via the user logger" in talk
    assert "success in" in talk
    param = text(("with_log_param", -1, 1))
    assert "INFO airloop.task - line via the log parameter" in param
    assert "ERROR user.async - async user error line" in param
    assert "INFO airloop.task - classic says hi via context" in text(("classic", -1, 1))
    assert "mapped element 10" in text(("mapped", 0, 1))
    assert "mapped element 20" in text(("mapped", 1, 1))
    assert "mapped element 20" not in text(("mapped", 0, 1))

    for try_number in (1, 2):
        failed = text(("flaky", -1, try_number))
        assert "Traceback (most recent call last):" in failed
        assert f"RuntimeError: kaboom on try {try_number}" in failed
        assert f"failed: RuntimeError: kaboom on try {try_number}" in failed
        assert f"kaboom on try {3 - try_number}" not in failed
    # A failed try that will be retried says so (and when); the last one does not.
    first, last = text(("flaky", -1, 1)), text(("flaky", -1, 2))
    retry_line = re.search(r"INFO airloop\.task - will retry as try 2 at (\S+)", first)
    assert retry_line is not None, first
    at = datetime.fromisoformat(retry_line.group(1))
    assert at.utcoffset() == timedelta(0), "a UTC time, as the log's timestamps"
    assert first.rstrip().endswith(retry_line.group(0)), "the note ends the try's log"
    assert "will retry" not in last


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_interleaved_tasks_log_to_their_own_files(tmp_path: Path) -> None:
    """Two coroutines take turns on the loop; each line lands in its own task's file."""
    a_logged, b_logged = asyncio.Event(), asyncio.Event()

    with DAG("logs_interleaved") as dag:

        @task
        async def alpha(log: logging.Logger) -> None:
            log.info("alpha-1")
            a_logged.set()
            await b_logged.wait()
            log.info("alpha-2")

        @task
        async def beta(log: logging.Logger) -> None:
            await a_logged.wait()
            log.info("beta-1")
            logging.getLogger("user").warning("beta-user")
            b_logged.set()

        alpha()
        beta()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="r")

    assert result.state is DagRunState.SUCCESS
    root = tmp_path / "logs" / "logs_interleaved" / "r"
    alpha_log = (root / "alpha" / "1.log").read_text()
    beta_log = (root / "beta" / "1.log").read_text()
    assert "alpha-1" in alpha_log
    assert "alpha-2" in alpha_log
    assert "beta" not in alpha_log
    assert "beta-1" in beta_log
    assert "beta-user" in beta_log
    assert "alpha-" not in beta_log


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_logs_outside_tasks_do_not_reach_task_files(tmp_path: Path) -> None:
    gate = asyncio.Event()
    running = asyncio.Event()

    with DAG("logs_outside") as dag:

        @task
        async def waits() -> None:
            running.set()
            await gate.wait()

        waits()

    async with Engine(Settings(home=tmp_path)) as engine:
        run = await engine.start_run(dag, run_id="r")
        await running.wait()
        logging.getLogger("user").warning("logged by the test, not by a task")
        gate.set()
        result = await run.done

    assert result.state is DagRunState.SUCCESS
    assert (
        "logged by the test"
        not in (tmp_path / "logs" / "logs_outside" / "r" / "waits" / "1.log").read_text()
    )


async def test_two_engines_do_not_duplicate_task_log_lines(tmp_path: Path) -> None:
    with DAG("logs_twice") as dag:

        @task
        async def once(log: logging.Logger) -> None:
            log.info("exactly-once-marker")

        once()

    async with (
        Engine(Settings(home=tmp_path / "one")) as engine,
        Engine(Settings(home=tmp_path / "two")),
    ):
        result = await engine.run(dag, run_id="r")

    assert result.state is DagRunState.SUCCESS
    text = (tmp_path / "one" / "logs" / "logs_twice" / "r" / "once" / "1.log").read_text()
    assert text.count("exactly-once-marker") == 1, text


async def test_starting_line_comes_first_for_sync_tasks(tmp_path: Path) -> None:
    logged = threading.Event()

    with DAG("logs_order") as dag:

        @task(priority_weight=10)
        def sync_first(log: logging.Logger) -> None:
            log.info("task-line")
            logged.set()

        @task(priority_weight=1)
        async def busy_loop() -> None:
            # Keeps the loop thread busy (deliberately blocking it) until the sync task
            # has logged: the same interleaving a busy loop produces by chance.
            if not logged.wait(timeout=10):
                raise AssertionError("the sync task did not run")

        sync_first()
        busy_loop()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="r")

    assert result.state is DagRunState.SUCCESS, result.failed
    lines = (tmp_path / "logs" / "logs_order" / "r" / "sync_first" / "1.log").read_text()
    first = lines.splitlines()[0]
    assert "starting logs_order/r/sync_first try 1" in first, lines
