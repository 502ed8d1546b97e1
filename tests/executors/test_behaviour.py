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


async def test_a_branch_skips_the_unchosen_path(engine: Engine, dags: dict[str, DAG]) -> None:
    """The decision travels on the finished report: the same on every executor."""
    result = await engine.run(dags["branching"])
    assert result.state is DagRunState.SUCCESS, result.failed
    table = await rows(engine, result.run_pk)
    assert {t: r.state for (t, _), r in table.items()} == {
        "pick": "success",
        "chosen": "success",
        "other": "skipped",
        "join": "success",
        "gate": "success",
        "gated": "skipped",
    }
    assert table["other", -1].error == "skipped by 'pick'"
    values = await xcoms(engine, result.run_pk)
    assert values[("pick", -1)] == "chosen"
    assert values[("join", -1)] == "joined"


async def test_prev_success_keys_reach_the_worker(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    found = []
    for day in (1, 2):
        start = datetime(2026, 6, day, tzinfo=UTC)
        run = await engine.start_run(
            dags["previous"],
            run_id=f"previous-{executor_name}-{day}",
            logical_date=start,
            data_interval=(start, datetime(2026, 6, day + 1, tzinfo=UTC)),
        )
        result = await asyncio.wait_for(asyncio.shield(run.done), 60)
        assert result.state is DagRunState.SUCCESS, result.failed
        found.append((await xcoms(engine, result.run_pk))[("prev_success", -1)])
    assert found == [
        [None, None],
        ["2026-06-01T00:00:00+00:00", "2026-06-02T00:00:00+00:00"],
    ]


async def test_rendered_values_are_stored_per_try(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    """Template fields and templated @task arguments, rendered in the worker, are
    recorded per task instance and try with the try's end."""
    run = await engine.start_run(
        dags["rendered_store"],
        run_id=f"rendered-{executor_name}",
        logical_date=datetime(2026, 6, 7, tzinfo=UTC),
    )
    result = await asyncio.wait_for(asyncio.shield(run.done), 60)
    assert result.state is DagRunState.SUCCESS, result.failed
    fields = await engine.store.rendered_fields(result.run_pk, "fields", -1)
    assert fields is not None
    assert fields.try_number == 1
    assert json.loads(fields.fields) == {
        "sql": "select '2026-06-07'",
        "options": {"n": "7", "plain": [1, 2]},
    }
    for try_number in (1, 2):
        stored = await engine.store.rendered_fields(
            result.run_pk, "flaky_args", -1, try_number=try_number
        )
        assert stored is not None
        assert json.loads(stored.fields) == {
            "op_args": ["20260607"],
            "op_kwargs": {"n": f"7 on try {try_number}"},
        }
    values = await xcoms(engine, result.run_pk)
    assert values[("flaky_args", -1)] == "20260607/7 on try 2"


async def test_expand_kwargs_zip_map_and_labels(
    engine: Engine, dags: dict[str, DAG], executor_name: str, test_pid: int
) -> None:
    result = await engine.run(dags["rich_mapping"])
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcoms(engine, result.run_pk)
    table = await rows(engine, result.run_pk)

    def outs(task_id: str) -> list[Any]:
        return [v for (t, i), v in sorted(values.items()) if t == task_id]

    assert outs("add") == [3, 7]
    assert [table["add", i].rendered_map_index for i in (0, 1)] == ["1+2", "3+4"]
    assert outs("short") == ["ann1", "bob2"]
    assert outs("long") == ["ann1", "bob2", "cy0"]
    greetings = outs("greet")
    assert [g.split(" ")[1] for g in greetings] == ["Ann", "Bob", "Cy"]
    assert [table["greet", i].rendered_map_index for i in range(3)] == ["Ann", "Bob", "Cy"]
    # The .map() function ran in the worker: never on the scheduler's loop thread.
    for greeting in greetings:
        pid, thread = greeting.split(" ")[0].split(":", 1)
        assert thread != threading.main_thread().name or int(pid) != test_pid
        if executor_name in ("process", "dask"):
            assert int(pid) != test_pid


async def lines_once(path: Path, *expected: str) -> list[str]:
    """The callbacks' side-channel file once it holds every line of ``expected``
    (callbacks may still run after the run is over: they never delay it)."""
    async with asyncio.timeout(30):
        while True:
            text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
            lines = text.splitlines()
            if all(line in lines for line in expected):
                return lines
            await asyncio.sleep(0.05)


async def test_task_and_dag_callbacks_fire_once_each(
    engine: Engine, dags: dict[str, DAG], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "callbacks.txt"
    logical = datetime(2026, 5, 4, 3, tzinfo=UTC)
    result = await engine.run(dags["callbacks"], params={"out": str(out)}, logical_date=logical)
    # cb_flaky failed after its retries; the callbacks' own errors and timeouts
    # changed no state.
    assert result.state is DagRunState.FAILED
    table = await rows(engine, result.run_pk)
    assert table["cb_ok", -1].state == "success"
    assert table["cb_bad", -1].state == "success"
    assert table["cb_skipper", -1].state == "skipped"
    assert table["cb_flaky", -1].state == "failed"
    assert table["cb_flaky", -1].try_number == 3
    assert (await xcoms(engine, result.run_pk))[("cb_bad", -1)] == 2
    ds = "2026-05-04"
    expected = [
        "execute cb_ok 1",
        "success cb_ok 1",
        f"notified cb_ok t {ds}",
        "execute cb_flaky 1",
        "retry cb_flaky 1 ValueError",
        "execute cb_flaky 2",
        "retry cb_flaky 2 ValueError",
        "execute cb_flaky 3",
        "failure cb_flaky 3 ValueError",
        "execute cb_skipper 1",
        "skipped cb_skipper 1",
        "execute cb_bad 1",
        "success cb_bad 1",
        "dag_failure callbacks task_failure True",
    ]
    lines = await lines_once(out, *expected)
    assert sorted(lines) == sorted(expected), lines
    # Errors and timeouts are in the task's log, with their tracebacks.
    path = next(
        r.path for r in await engine.store.log_paths(result.run_pk) if r.task_id == "cb_bad"
    )
    log = await log_text(path, "on_success_callback hanging_sync_callback did not finish")
    assert "on_execute_callback raising_callback failed: RuntimeError: callback broke" in log
    assert "on_success_callback raising_callback failed: RuntimeError: callback broke" in log
    assert log.count("Traceback") >= 3
    assert 'raise RuntimeError("callback broke")' in log
    assert (
        "on_success_callback hanging_async_callback did not finish within callback_timeout" in log
    )
    # A DAG callback's error is in the engine's log, with its traceback.
    assert "DAG on_failure_callback raising_callback failed: RuntimeError: callback broke" in (
        caplog.text
    )
    assert 'raise RuntimeError("callback broke")' in caplog.text


async def test_dag_success_callback(engine: Engine, dags: dict[str, DAG], tmp_path: Path) -> None:
    out = tmp_path / "callbacks.txt"
    result = await engine.run(dags["callbacks_ok"], params={"out": str(out)})
    assert result.state is DagRunState.SUCCESS, result.failed
    expected = ["success only 1", "dag_success callbacks_ok success"]
    assert sorted(await lines_once(out, *expected)) == sorted(expected)


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


async def test_mapped_task_groups(engine: Engine, dags: dict[str, DAG]) -> None:
    """A mapped task group (ADR 0029) gives the same instances, states and outputs on
    every executor: the group's .map() source is applied in the worker, instance i
    gets element i and its group's same-index outputs, a failed index fails only its
    own downstream, and a task after the group sees all instances."""
    result = await engine.run(dags["mapped_groups"])
    assert result.state is DagRunState.FAILED
    table = await rows(engine, result.run_pk)
    states = {f"{t}[{i}]" if i >= 0 else t: r.state for (t, i), r in table.items()}
    assert states == {
        "counts": "success",
        "orders.priced[0]": "success",
        "orders.priced[1]": "failed",
        "orders.priced[2]": "success",
        "orders.taxed[0]": "success",
        "orders.taxed[1]": "upstream_failed",
        "orders.taxed[2]": "success",
        "summary": "success",
        "strict": "upstream_failed",
        "labels.greet[0]": "success",
        "labels.greet[1]": "success",
        "labels.label[0]": "success",
        "labels.label[1]": "success",
    }
    values = await xcoms(engine, result.run_pk)
    assert values[("orders.taxed", 0)] == {"total": 11, "map_index": 0, "pulled": 10}
    assert values[("orders.taxed", 2)] == {"total": 99, "map_index": 2, "pulled": 90}
    assert values[("summary", -1)] == [11, 99]
    assert [values[("labels.label", i)] for i in (0, 1)] == ["a:ann", "b:bob"]
    assert [values[("labels.greet", i)] for i in (0, 1)] == ["hi ann", "hi bob"]
