"""Trigger rules, SkipTask/FailTask, run state, threads and contextvars, params."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from airloop import (
    DAG,
    BaseOperator,
    Context,
    DagRunState,
    FailTask,
    Param,
    SkipTask,
    TriggerRule,
    task,
)
from airloop.engine.engine import Engine
from airloop.exceptions import CycleError, ParamValidationError
from airloop.runtime import current_task_label, run_sync
from airloop.settings import Settings

from .conftest import EXPECTED_DEFAULT_EXECUTOR
from .support import ti_rows, ti_states

# -- trigger rules and run state ------------------------------------------------------


async def test_all_done_cleanup_runs_after_a_failure(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("tr_all_done") as dag:

        @task
        def extract() -> int:
            raise RuntimeError("source unavailable")

        @task
        def load(x: int) -> None:
            ran.append("load")

        @task(trigger_rule=TriggerRule.ALL_DONE)
        async def cleanup() -> None:
            ran.append("cleanup")

        data = extract()
        load(data)
        data >> cleanup()

    result = await engine.run(dag)

    assert ran == ["cleanup"]
    assert await ti_states(engine, result.run_pk) == {
        "extract": "failed",
        "load": "upstream_failed",
        "cleanup": "success",
    }
    # 'load' is a leaf that is upstream_failed: the run fails.
    assert result.state is DagRunState.FAILED
    assert result.failed == [("extract", "RuntimeError: source unavailable")]
    runs = await engine.store.find_runs(result.run_id, dag_id="tr_all_done")
    assert [r.state for r in runs] == ["failed"]


async def test_leaves_decide_the_run_state(engine: Engine) -> None:
    """A failure handled by an all_done leaf does not fail the run (Airflow semantics)."""
    with DAG("tr_leaves") as dag:

        @task
        def fragile() -> None:
            raise ValueError("expected")

        @task(trigger_rule="all_done")
        def always_cleans() -> str:
            return "clean"

        fragile() >> always_cleans()

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert result.ok
    assert await ti_states(engine, result.run_pk) == {
        "fragile": "failed",
        "always_cleans": "success",
    }
    assert result.failed == [("fragile", "ValueError: expected")]
    runs = await engine.store.find_runs(result.run_id)
    assert runs[0].state == "success"


async def test_one_failed_and_none_failed(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("tr_one_none") as dag:

        @task
        def good() -> int:
            return 1

        @task
        def bad() -> int:
            raise ValueError("nope")

        @task
        def skipper() -> None:
            raise SkipTask("nothing new")

        @task(trigger_rule=TriggerRule.ONE_FAILED)
        def alert_fires() -> None:
            ran.append("alert_fires")

        @task(trigger_rule=TriggerRule.ONE_FAILED)
        def alert_quiet() -> None:
            ran.append("alert_quiet")

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def tolerant() -> None:
            ran.append("tolerant")

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def strict() -> None:
            ran.append("strict")

        g, b, s = good(), bad(), skipper()
        [g, b] >> alert_fires()
        g >> alert_quiet()
        [g, s] >> tolerant()
        [g, b] >> strict()

    result = await engine.run(dag)

    assert sorted(ran) == ["alert_fires", "tolerant"]
    assert await ti_states(engine, result.run_pk) == {
        "good": "success",
        "bad": "failed",
        "skipper": "skipped",
        "alert_fires": "success",
        "alert_quiet": "skipped",
        "tolerant": "success",
        "strict": "upstream_failed",
    }
    assert result.state is DagRunState.FAILED  # 'strict' is a failed-like leaf


async def test_skip_propagates_and_run_succeeds(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("skip_chain") as dag:

        @task
        async def gate() -> None:
            raise SkipTask("not today")

        @task
        def middle() -> None:
            ran.append("middle")

        @task
        def last() -> None:
            ran.append("last")

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def needs_one_success() -> None:
            ran.append("needs_one_success")

        g = gate()
        g >> middle() >> last()
        g >> needs_one_success()

    result = await engine.run(dag)

    assert ran == []
    rows = await ti_rows(engine, result.run_pk)
    assert {t: r.state for (t, _), r in rows.items()} == {
        "gate": "skipped",
        "middle": "skipped",
        "last": "skipped",
        "needs_one_success": "skipped",
    }
    assert rows["gate", -1].error == "not today"
    assert result.state is DagRunState.SUCCESS
    assert result.counts == {"skipped": 4}


async def test_fail_task_is_not_retried(engine: Engine) -> None:
    tries: list[int] = []

    class Refuses(BaseOperator):
        def execute(self, context: Context) -> None:
            tries.append(context["try_number"])
            raise FailTask("bad input, retrying will not help")

    with DAG("fail_task") as dag:

        @task(retries=5, retry_delay=0.01)
        async def refuses_too(try_number: int) -> None:
            tries.append(try_number)
            raise FailTask("no")

        refuses_too()
        Refuses(task_id="classic", retries=5, retry_delay=0.01)

    result = await engine.run(dag)

    assert tries == [1, 1]
    rows = await ti_rows(engine, result.run_pk)
    for task_id, message in [
        ("refuses_too", "FailTask: no"),
        ("classic", "FailTask: bad input, retrying will not help"),
    ]:
        row = rows[task_id, -1]
        assert (row.state, row.try_number, row.max_tries) == ("failed", 1, 6)
        assert row.error == message
    assert result.state is DagRunState.FAILED


# -- where task code runs -------------------------------------------------------------


@pytest.mark.async_executor  # checks what runs on the loop thread
async def test_sync_tasks_run_in_threads_with_the_engine_context(engine: Engine) -> None:
    loop_thread = threading.current_thread()
    seen: dict[str, tuple[threading.Thread, str | None, str]] = {}

    class SyncOp(BaseOperator):
        def execute(self, context: Context) -> None:
            seen["classic_sync"] = (
                threading.current_thread(),
                current_task_label.get(),
                str(context["ti"]),
            )

    class AsyncOp(BaseOperator):
        async def execute(self, context: Context) -> None:
            seen["classic_async"] = (
                threading.current_thread(),
                current_task_label.get(),
                str(context["ti"]),
            )

    with DAG("where") as dag:

        @task
        def sync_task(ti: Any) -> None:
            seen["sync_task"] = (threading.current_thread(), current_task_label.get(), str(ti))

        @task
        async def async_task(ti: Any) -> None:
            seen["async_task"] = (threading.current_thread(), current_task_label.get(), str(ti))

        @task
        def mapped_sync(x: int, ti: Any) -> None:
            seen[f"mapped_sync{x}"] = (
                threading.current_thread(),
                current_task_label.get(),
                str(ti),
            )

        sync_task()
        async_task()
        mapped_sync.expand(x=[0, 1])
        SyncOp(task_id="classic_sync")
        AsyncOp(task_id="classic_async")

    result = await engine.run(dag, run_id="r1")

    assert result.state is DagRunState.SUCCESS, result.failed
    expected_labels = {
        "sync_task": "where/r1/sync_task try 1",
        "async_task": "where/r1/async_task try 1",
        "mapped_sync0": "where/r1/mapped_sync[0] try 1",
        "mapped_sync1": "where/r1/mapped_sync[1] try 1",
        "classic_sync": "where/r1/classic_sync try 1",
        "classic_async": "where/r1/classic_async try 1",
    }
    assert set(seen) == set(expected_labels)
    for name, (thread, label, ti_label) in seen.items():
        assert label == ti_label == expected_labels[name], name
        if "async" in name:
            assert thread is loop_thread, name
        else:
            assert thread is not loop_thread, name
            assert thread.name.startswith("airloop-sync"), name
    assert current_task_label.get() is None  # nothing leaked into the caller's context


async def test_run_sync_offloads_to_the_engine_pool_with_the_task_context(
    engine: Engine,
) -> None:
    loop_thread = threading.current_thread()
    seen: list[tuple[threading.Thread, str | None]] = []

    def blocking() -> int:
        seen.append((threading.current_thread(), current_task_label.get()))
        return 41

    with DAG("offload") as dag:

        @task
        async def uses_run_sync() -> int:
            return await run_sync(blocking) + 1

        uses_run_sync()

    result = await engine.run(dag, run_id="r")

    assert result.ok, result.failed
    [(thread, label)] = seen
    assert thread is not loop_thread
    assert thread.name.startswith("airloop-sync")
    assert label == "offload/r/uses_run_sync try 1"
    assert [x.value for x in await engine.store.xcom_values(result.run_pk)] == ["42"]


async def test_a_cycle_is_rejected_before_the_run_exists(engine: Engine) -> None:
    with DAG("cyclic") as dag:

        @task
        def a() -> None:
            pass

        @task
        def b() -> None:
            pass

        first, second = a(), b()
        first >> second >> first

    with pytest.raises(CycleError, match="cycle"):
        await engine.run(dag)
    assert await engine.store.latest_runs() == []


async def test_a_blocked_sync_task_does_not_block_the_loop(engine: Engine) -> None:
    """The sync task waits for an event only an async task (on the loop) can set."""
    go = threading.Event()

    with DAG("not_blocking") as dag:

        @task
        def waits_in_a_thread() -> bool:
            if not go.wait(timeout=10):
                raise AssertionError("the loop was blocked: the async task never ran")
            return True

        @task
        async def sets_from_the_loop() -> None:
            go.set()

        waits_in_a_thread()
        sets_from_the_loop()

    async with asyncio.timeout(8):
        result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed


# -- params -----------------------------------------------------------------------------


def params_dag(seen: dict[str, Any]) -> DAG:
    class ShowParams(BaseOperator):
        def execute(self, context: Context) -> None:
            seen["context"] = dict(context["params"])
            seen["attribute"] = dict(context.params)

    with DAG(
        "with_params",
        params={
            "n": 3,
            "label": Param("small", choices=["small", "large"]),
            "ratio": Param(0.5, type=float),
        },
    ) as dag:

        @task
        def use_params(params: Any) -> int:
            seen["argument"] = dict(params)
            return int(params["n"])

        @task
        async def use_context(**context: Any) -> None:
            seen["kwargs"] = dict(context["params"])

        use_params()
        use_context()
        ShowParams(task_id="show")
    return dag


async def test_params_defaults_reach_tasks(engine: Engine) -> None:
    seen: dict[str, Any] = {}
    result = await engine.run(params_dag(seen))

    assert result.state is DagRunState.SUCCESS, result.failed
    expected = {"n": 3, "label": "small", "ratio": 0.5}
    assert seen == {
        "argument": expected,
        "kwargs": expected,
        "context": expected,
        "attribute": expected,
    }
    runs = await engine.store.find_runs(result.run_id)
    assert runs[0].params == expected


async def test_params_overrides_are_validated_and_coerced(engine: Engine) -> None:
    seen: dict[str, Any] = {}
    result = await engine.run(params_dag(seen), params={"n": "7", "label": "large"})

    assert result.state is DagRunState.SUCCESS, result.failed
    expected = {"n": 7, "label": "large", "ratio": 0.5}
    assert seen["argument"] == seen["context"] == seen["kwargs"] == expected
    runs = await engine.store.find_runs(result.run_id)
    assert runs[0].params == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"nope": 1}, "unknown parameter 'nope'"),
        ({"n": "many"}, "parameter 'n': 'many' is not a valid int"),
        ({"label": "medium"}, "parameter 'label': 'medium' is not one of"),
        ({"ratio": [1]}, "parameter 'ratio'"),
    ],
)
async def test_invalid_params_are_rejected_before_the_run_exists(
    engine: Engine, given: dict[str, Any], message: str
) -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(ParamValidationError, match="^" + message.replace("(", r"\(")):
        await engine.run(params_dag(seen), params=given)
    assert seen == {}
    assert await engine.store.latest_runs() == []


async def test_required_param_without_default(engine: Engine) -> None:
    with DAG("required_param", params={"target": Param(type=str)}) as dag:

        @task
        def show(params: Any) -> str:
            return str(params["target"])

        show()

    with pytest.raises(ParamValidationError, match="'target' is required"):
        await engine.run(dag)
    result = await engine.run(dag, params={"target": "prod"})
    assert result.state is DagRunState.SUCCESS
    stored = await engine.store.xcom_values(result.run_pk)
    assert [r.value for r in stored] == ['"prod"']


async def test_tasks_naming_no_executor_run_on_this_passs_default(
    engine: Engine, tmp_path: Path
) -> None:
    """CI's second pass (AIRLOOP_USE_ASYNC=false) really runs without the async executor:
    the settings the tests build read the variable, and the tasks land there."""
    with DAG("default_executor") as dag:

        @task
        def sync_one() -> None: ...

        @task
        async def async_one() -> None: ...

        sync_one()
        async_one()

    assert engine.settings.default_executor == EXPECTED_DEFAULT_EXECUTOR
    assert Settings(home=tmp_path).default_executor == EXPECTED_DEFAULT_EXECUTOR
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    rows = await ti_rows(engine, result.run_pk)
    assert {r.executor for r in rows.values()} == {EXPECTED_DEFAULT_EXECUTOR}


# -- tracing a state change to its report (ADR 0017) ------------------------------------


async def test_the_log_traces_each_state_change_to_the_report_that_caused_it(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with DAG("traced") as dag:

        @task
        def first() -> None:
            raise FailTask("no")

        @task
        def second() -> None:
            pass

        first() >> second()

    with caplog.at_level(logging.DEBUG, logger="airloop.engine.active_run"):
        result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    lines = [r.getMessage() for r in caplog.records if r.name == "airloop.engine.active_run"]
    (failed,) = [line for line in lines if "first: running -> failed" in line]
    stimulus = failed.split("(try 1, ")[1].split(")")[0]
    assert stimulus.startswith("finished-")
    # The cascade downstream carries the same id: the report that caused it.
    (cascade,) = [line for line in lines if "second: none -> upstream_failed" in line]
    assert f"(try 0, {stimulus})" in cascade
