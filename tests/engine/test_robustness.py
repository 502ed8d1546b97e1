"""What task code cannot do to the engine: exit it, hold its threads, ignore timeouts."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import ParamValidationError
from airloop.settings import Settings


async def test_system_exit_and_keyboard_interrupt_fail_only_their_task(tmp_path: Path) -> None:
    with DAG("exits") as dag:

        @task
        def sync_exit() -> None:
            sys.exit(3)

        @task
        async def async_interrupt() -> None:
            raise KeyboardInterrupt

        @task
        async def fine() -> int:
            return 1

        sync_exit()
        async_interrupt()
        fine()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    assert result.state is DagRunState.FAILED
    assert rows["sync_exit"].state == "failed"
    assert rows["sync_exit"].error == "SystemExit: 3 (raised by the task)"
    assert rows["async_interrupt"].state == "failed"
    assert rows["async_interrupt"].error == "KeyboardInterrupt (raised by the task)"
    assert rows["fine"].state == "success"


async def test_abandoned_threads_do_not_starve_the_pool(tmp_path: Path) -> None:
    with DAG("starve") as dag:

        @task(execution_timeout=0.3)
        def stuck_a() -> None:
            time.sleep(5)

        @task(execution_timeout=0.3)
        def stuck_b() -> None:
            time.sleep(5)

        @task
        def after(a: None, b: None) -> int:
            return 1

        after.override(trigger_rule="all_done")(stuck_a(), stuck_b())

    started = time.monotonic()
    async with Engine(Settings(home=tmp_path, sync_threads=1)) as engine:
        result = await engine.run(dag)
    # With one thread, each abandoned call lends the pool a thread until it returns:
    # the second task and "after" do not wait for the first one's 5 s sleep.
    assert time.monotonic() - started < 4
    assert result.counts == {"failed": 2, "success": 1}


async def test_an_async_task_that_ignores_its_timeout_is_failed_anyway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airloop.executors import runner

    monkeypatch.setattr(runner, "CANCEL_GRACE", 0.3)
    with DAG("stubborn") as dag:

        @task(execution_timeout=0.2)
        async def stubborn() -> None:
            for _ in range(50):
                try:  # noqa: SIM105 - it ignores the cancellation: the bug we must survive
                    await asyncio.sleep(0.1)
                except asyncio.CancelledError:
                    pass

        stubborn()

    async with Engine(Settings(home=tmp_path, shutdown_grace_seconds=0.5)) as engine:
        result = await engine.run(dag)
        assert engine.watchdog is not None
    assert result.counts == {"failed": 1}
    assert "ignored its cancellation and was abandoned" in result.failed[0][1]
    assert engine.abandoned == 1


async def test_params_must_be_storable_as_json(tmp_path: Path) -> None:
    from datetime import date

    # Found when the DAG is defined, not when a run is triggered.
    with pytest.raises(ParamValidationError, match=r"parameter 'd': .* cannot be stored as JSON"):
        DAG("p", params={"d": date(2026, 1, 1)})


async def test_print_goes_to_the_task_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DAG("printing") as dag:

        @task
        async def a() -> None:
            print("hello from async")

        @task
        def s() -> None:
            print("hello from sync", file=sys.stderr)

        a()
        s()

    print("outside any task")
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        logs = {r.task_id: Path(r.path) for r in await engine.store.log_paths(result.run_pk)}
    captured = capsys.readouterr()
    assert "outside any task" in captured.out
    assert "hello from" not in captured.out + captured.err
    assert "hello from async\n" in await asyncio.to_thread(logs["a"].read_text)
    assert "hello from sync\n" in await asyncio.to_thread(logs["s"].read_text)
