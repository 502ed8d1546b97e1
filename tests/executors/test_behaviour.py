"""The executor behaviour suite: the same tests on async, thread, process and dask.

This is how CI tests the project with and without the async executor: the module's
engine fixture is parametrized over all four backends (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airloop import DagRunState
from airloop.authoring.dag import DAG
from airloop.core.states import TaskState
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def rows(engine: Engine, run_pk: int) -> dict[tuple[str, int], Any]:
    return {(r.task_id, r.map_index): r for r in await engine.store.task_instances(run_pk)}


async def xcoms(engine: Engine, run_pk: int) -> dict[tuple[str, int], Any]:
    return {
        (x.task_id, x.map_index): json.loads(x.value)
        for x in await engine.store.xcom_values(run_pk)
        if x.key == "return_value"
    }


async def log_text(path: str, until: str) -> str:
    """A task log's text once it contains ``until`` (the engine's writer thread appends)."""
    async with asyncio.timeout(20):
        # A file another thread appends to: no event to wait on, so read it again.
        while until not in (text := await asyncio.to_thread(Path(path).read_text)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return text


async def wait_for(run: ActiveRun, predicate: Any, within: float = 30) -> None:
    """Event-driven: checked after every scheduler tick of ``run``."""
    reached = asyncio.Event()
    unsubscribe = run.subscribe(lambda r: reached.set() if predicate(r) else None)
    try:
        async with asyncio.timeout(within):
            while not predicate(run):
                await reached.wait()
                reached.clear()
    finally:
        unsubscribe()


async def test_success_xcom_passing_and_mapping(
    engine: Engine, dags: dict[str, DAG], executor_name: str, test_pid: int
) -> None:
    result = await engine.run(dags["flow"], params={"n": 4})
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcoms(engine, result.run_pk)
    combined = values[("combine", -1)]
    assert combined["doubled"] == [0, 2, 4, 6]
    assert combined["squared"] == [0, 1, 4, 9]
    table = await rows(engine, result.run_pk)
    assert {r.executor for r in table.values()} == {executor_name}
    assert [i for (t, i) in table if t == "square"] == [0, 1, 2, 3]
    sync_at, async_at = values[("sync_where", -1)], values[("async_where", -1)]
    # Where the code ran: nothing but async tasks on the scheduler's loop thread.
    main = threading.main_thread().name
    if executor_name == "async":
        assert async_at == {"pid": test_pid, "thread": main}
        assert sync_at["pid"] == test_pid
        assert sync_at["thread"] != main
    elif executor_name == "thread":
        assert async_at["pid"] == test_pid
        assert async_at["thread"] != main
        assert sync_at["pid"] == test_pid
        assert sync_at["thread"] != main
    else:  # process, dask: other processes
        assert async_at["pid"] != test_pid
        assert sync_at["pid"] != test_pid


async def test_sync_task_runs_off_any_loop(engine: Engine, dags: dict[str, DAG]) -> None:
    """delay() and asyncio.run() work in a plain sync task on every executor."""
    result = await engine.run(dags["sync_off_loop"])
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcoms(engine, result.run_pk)
    assert values[("sync_delay", -1)] == "slept"
    assert values[("sync_asyncio_run", -1)] == 7
    assert values[("sync_no_loop", -1)] is True


async def test_print_goes_to_the_task_log(engine: Engine, dags: dict[str, DAG]) -> None:
    """ADR 0007: what a task prints (stdout or stderr) lands in its try's log file."""
    result = await engine.run(dags["printing"])
    assert result.state is DagRunState.SUCCESS, result.failed
    paths = {r.task_id: r.path for r in await engine.store.log_paths(result.run_pk)}
    sync_log = await log_text(paths["sync_prints"], "success in")
    async_log = await log_text(paths["async_prints"], "success in")
    assert "printed by a sync task\n" in sync_log
    assert "to stderr from a sync task\n" in sync_log
    assert "printed by an async task\n" in async_log


async def test_failures_fail_downstream(engine: Engine, dags: dict[str, DAG]) -> None:
    result = await engine.run(dags["failing"])
    assert result.state is DagRunState.FAILED
    table = await rows(engine, result.run_pk)
    assert table["boom", -1].state == "failed"
    assert table["boom", -1].error == "ValueError: boom in a sync task"
    assert table["aboom", -1].state == "failed"
    assert table["aboom", -1].error == "KeyError: 'boom in an async task'"
    assert table["after", -1].state == "upstream_failed"
    path = next(r.path for r in await engine.store.log_paths(result.run_pk) if r.task_id == "boom")
    log = await asyncio.to_thread(Path(path).read_text)
    assert "Traceback" in log
    assert "ValueError: boom in a sync task" in log


async def test_retries(engine: Engine, dags: dict[str, DAG]) -> None:
    result = await engine.run(dags["retrying"])
    assert result.state is DagRunState.SUCCESS, result.failed
    table = await rows(engine, result.run_pk)
    assert table["flaky_sync", -1].try_number == 2
    assert table["flaky_async", -1].try_number == 3
    values = await xcoms(engine, result.run_pk)
    assert values[("flaky_sync", -1)] == 2
    assert values[("flaky_async", -1)] == 3
    logs = [r for r in await engine.store.log_paths(result.run_pk) if r.task_id == "flaky_async"]
    assert sorted(r.try_number for r in logs) == [1, 2, 3]
    # Each failed try's log ends saying it will be retried (written by the scheduler,
    # after what the worker wrote).
    for row in logs:
        if row.try_number < 3:
            text = await log_text(row.path, "will retry")
            assert f"will retry as try {row.try_number + 1} at " in text.rstrip().splitlines()[-1]


async def test_execution_timeouts(engine: Engine, dags: dict[str, DAG]) -> None:
    started = time.monotonic()
    result = await engine.run(dags["timeouts"])
    took = time.monotonic() - started
    assert took < 20, "a timed-out task must not be waited for"
    table = await rows(engine, result.run_pk)
    for task_id in ("slow_sync", "slow_async"):
        assert table[task_id, -1].state == "failed"
        assert "execution_timeout of 0.5s exceeded" in table[task_id, -1].error
    assert table["slow_then_fast", -1].state == "success"
    assert table["slow_then_fast", -1].try_number == 2


async def test_cancelling_one_task_instance(engine: Engine, dags: dict[str, DAG]) -> None:
    run = await engine.start_run(dags["cancelling"])

    def both_running(r: ActiveRun) -> bool:
        return all(
            r.state_of(k) is TaskState.RUNNING
            for k in (r.keys("sleepy_sync")[0], r.keys("sleepy_async")[0])
        )

    await wait_for(run, both_running)
    assert engine.cancel(run, "sleepy_sync", reason="test cancel")
    assert engine.cancel(run, "sleepy_async", reason="test cancel")
    result = await asyncio.wait_for(asyncio.shield(run.done), 20)
    assert result.state is DagRunState.FAILED
    table = await rows(engine, result.run_pk)
    for task_id in ("sleepy_sync", "sleepy_async"):
        assert table[task_id, -1].state == "failed"
        assert table[task_id, -1].error == "interrupted: test cancel"
        assert table[task_id, -1].try_number == 1  # a cancellation is never retried
    assert not engine.cancel(run, "sleepy_sync"), "nothing left to cancel"


async def test_templates_and_context_render_in_the_worker(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    logical = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    interval = (datetime(2026, 5, 3, tzinfo=UTC), datetime(2026, 5, 4, tzinfo=UTC))
    run = await engine.start_run(
        dags["templated"],
        run_id=f"templated-{executor_name}",
        logical_date=logical,
        data_interval=interval,
    )
    result = await asyncio.wait_for(asyncio.shield(run.done), 60)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcoms(engine, result.run_pk)
    rendered = values[("rendered", -1)]
    assert rendered["sql"] == "select '2026-05-04' as day, 5 as n -- seeded\n"
    assert rendered["options"] == {
        "nested": ["20260504", ["test", "abab"]],
        "interval": "2026-05-03T00:00:00+00:00/2026-05-04T00:00:00+00:00",
        "ti": f"templated__rendered__20260504 1 templated-{executor_name}",
    }
    for name in ("sync_context", "async_context"):
        assert values[(name, -1)]["ds"] == "2026-05-04"
        assert values[(name, -1)]["pulled"] == "seeded"
        assert values[(name, -1)]["same"] is True
    assert values[("sync_context", -1)]["interval"] == "2026-05-03T00:00:00+00:00"
    assert values[("async_context", -1)]["interval"] == "2026-05-04T00:00:00+00:00"


async def test_xcom_keys_pushed_and_pulled_across_tasks_and_map_indexes(
    engine: Engine, dags: dict[str, DAG]
) -> None:
    result = await engine.run(dags["xcom_keys"])
    assert result.state is DagRunState.SUCCESS, result.failed
    stored = {
        (x.task_id, x.map_index, x.key): json.loads(x.value)
        for x in await engine.store.xcom_values(result.run_pk)
    }
    assert stored[("push_sync", -1, "sync_key")] == [1, 2]
    assert stored[("push_async", -1, "async_key")] == "a"
    assert [stored[("fan", i, "square")] for i in range(3)] == [1, 4, 9]
    assert stored[("pusher", -1, "classic")] == {"from": "operator"}
    assert stored[("split", -1, "a")] == 1
    assert stored[("split", -1, "return_value")] == {"a": 1, "b": [2, 3]}
    assert ("quiet", -1, "return_value") not in stored  # do_xcom_push=False
    assert stored[("quiet", -1, "kept")] is True
    pulled = stored[("pull_all", -1, "return_value")]
    refused = pulled.pop("refused")
    assert pulled == {
        "sync_key": [1, 2],  # two hops upstream: pullable
        "async_key": "a",
        "square_1": 4,
        "squares_0_2": [1, 9],
        "squares": [1, 4, 9],
        "returns": [1, [1, 2, 3]],
        "classic": {"from": "operator"},
        "quiet": "none",
        "kept": True,
        "split_a": 1,
        "missing": "dflt",
        "a": 1,
        "b": [2, 3],
    }
    assert "task 'lonely' is not upstream of this task" in refused
    # Mapped instances pull too.
    assert stored[("mapped_pull", 0, "return_value")] == [[1, 2], 1]
    assert stored[("mapped_pull", 1, "return_value")] == [[1, 2], 9]
    templated = stored[("templated_pull", -1, "return_value")]
    assert templated["sql"] == "1-2"
    # Nested strings render as text; task outputs nested in a template field resolve.
    assert templated["options"] == {"square": "9", "nested": [[2, 3], {"a": 1}]}
