"""Branching, short circuits, LatestOnly, setup/teardown and fail_fast, end to end
through a real engine (SQLite file, real executors)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from airloop import (
    DAG,
    BaseBranchOperator,
    DagRunState,
    LatestOnlyOperator,
    TaskGroup,
    TriggerRule,
    setup,
    task,
    teardown,
)
from airloop.core.states import TaskState
from airloop.engine.engine import Engine

from .support import state_of, ti_rows, ti_states, wait_until, xcom_map


async def test_a_branch_skips_one_path_and_the_join_runs(engine: Engine) -> None:
    with DAG("branching") as dag:

        @task.branch
        def pick() -> str:
            return "left"

        @task
        def left() -> str:
            return "L"

        @task
        def right() -> str:
            return "R"

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def join() -> None:
            return None

        @task
        def after_join() -> None:
            return None

        pick() >> [left(), right()] >> join() >> after_join()

    result = await engine.run(dag)
    states = await ti_states(engine, result.run_pk)
    assert states == {
        "pick": "success",
        "left": "success",
        "right": "skipped",
        "join": "success",
        "after_join": "success",
    }
    rows = await ti_rows(engine, result.run_pk)
    assert rows[("right", -1)].error == "skipped by 'pick'"
    assert result.state is DagRunState.SUCCESS


async def test_an_all_success_task_after_a_skipped_path_is_skipped(engine: Engine) -> None:
    class Choose(BaseBranchOperator):
        async def choose_branch(self, context: Any) -> set[str]:
            await asyncio.sleep(0)
            return {"a"}

    with DAG("branch_class") as dag:

        @task
        def a() -> None:
            return None

        @task
        def b() -> None:
            return None

        @task
        def both() -> None:
            return None

        Choose(task_id="choose") >> [a(), b()] >> both()

    result = await engine.run(dag)
    assert await ti_states(engine, result.run_pk) == {
        "choose": "success",
        "a": "success",
        "b": "skipped",
        "both": "skipped",
    }
    assert (await xcom_map(engine, result.run_pk))[("choose", -1)] == '["a"]'
    assert result.state is DagRunState.SUCCESS


async def test_a_branch_may_choose_a_task_group(engine: Engine) -> None:
    with DAG("branch_group") as dag:

        @task.branch
        def pick() -> str:
            return "heavy"

        @task
        def step() -> None:
            return None

        chooser = pick()
        with TaskGroup("heavy") as heavy:
            step() >> step()
        with TaskGroup("light") as light:
            step()
        chooser >> [heavy, light]

    result = await engine.run(dag)
    assert await ti_states(engine, result.run_pk) == {
        "pick": "success",
        "heavy.step": "success",
        "heavy.step__1": "success",
        "light.step": "skipped",
    }


async def test_a_bad_branch_choice_fails_the_branch_with_the_valid_choices(
    engine: Engine,
) -> None:
    with DAG("bad_branch") as dag:

        @task.branch(retries=2, retry_delay=0)
        def pick() -> str:
            return "elsewhere"

        @task
        def a() -> None:
            return None

        @task
        def elsewhere() -> None:
            return None

        pick() >> a()
        elsewhere()

    result = await engine.run(dag)
    rows = await ti_rows(engine, result.run_pk)
    assert rows[("pick", -1)].state == "failed"
    assert rows[("pick", -1)].try_number == 1  # a wrong choice is not retried
    assert rows[("pick", -1)].error == (
        "BranchError: branch task 'pick' chose 'elsewhere', which is not directly "
        "downstream of it; valid choices: 'a'"
    )
    assert rows[("a", -1)].state == "upstream_failed"
    assert result.state is DagRunState.FAILED


async def short_circuit_run(engine: Engine, ignore: bool) -> dict[str, str]:
    with DAG(f"short_{ignore}") as dag:

        @task.short_circuit(ignore_downstream_trigger_rules=ignore)
        def check() -> bool:
            return False

        @task
        def direct() -> None:
            return None

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def cleanup() -> None:
            return None

        check() >> direct() >> cleanup()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS
    return await ti_states(engine, result.run_pk)


async def test_short_circuit_skips_everything_below_by_default(engine: Engine) -> None:
    states = await short_circuit_run(engine, ignore=True)
    assert states == {"check": "success", "direct": "skipped", "cleanup": "skipped"}


async def test_short_circuit_respecting_trigger_rules_lets_all_done_run(engine: Engine) -> None:
    states = await short_circuit_run(engine, ignore=False)
    assert states == {"check": "success", "direct": "skipped", "cleanup": "success"}


async def test_a_truthy_short_circuit_skips_nothing(engine: Engine) -> None:
    with DAG("short_true") as dag:

        @task.short_circuit
        async def check() -> int:
            return 7

        @task
        def after(value: int) -> int:
            return value + 1

        after(check())

    result = await engine.run(dag)
    assert await ti_states(engine, result.run_pk) == {"check": "success", "after": "success"}


def setup_teardown_dag(
    name: str, *, work_fails: bool, teardown_fails: bool, fail_dagrun: bool
) -> DAG:
    with DAG(name) as dag:

        @setup
        def create() -> str:
            return "cluster"

        @task
        def work(cluster: str) -> None:
            if work_fails:
                raise ValueError("work broke")

        @teardown(on_failure_fail_dagrun=fail_dagrun)
        def delete(cluster: str) -> None:
            if teardown_fails:
                raise ValueError("teardown broke")

        c = create()
        c >> work(c) >> delete(c)
    return dag


async def test_a_teardown_runs_after_failed_work_and_the_run_fails(engine: Engine) -> None:
    dag = setup_teardown_dag("st_work", work_fails=True, teardown_fails=False, fail_dagrun=False)
    result = await engine.run(dag)
    assert await ti_states(engine, result.run_pk) == {
        "create": "success",
        "work": "failed",
        "delete": "success",
    }
    assert result.state is DagRunState.FAILED


async def test_a_failed_teardown_does_not_fail_the_run(engine: Engine) -> None:
    dag = setup_teardown_dag("st_td", work_fails=False, teardown_fails=True, fail_dagrun=False)
    result = await engine.run(dag)
    assert (await ti_states(engine, result.run_pk))["delete"] == "failed"
    assert result.state is DagRunState.SUCCESS


async def test_a_failed_teardown_fails_the_run_with_on_failure_fail_dagrun(
    engine: Engine,
) -> None:
    dag = setup_teardown_dag("st_fail", work_fails=False, teardown_fails=True, fail_dagrun=True)
    result = await engine.run(dag)
    assert (await ti_states(engine, result.run_pk))["delete"] == "failed"
    assert result.state is DagRunState.FAILED


async def test_as_setup_and_as_teardown_on_tasks(engine: Engine) -> None:
    with DAG("st_methods") as dag:

        @task
        def make() -> None:
            return None

        @task
        def use() -> None:
            raise ValueError("broke")

        @task
        def clean() -> None:
            return None

        s = make().as_setup()
        s >> use() >> clean().as_teardown(setups=s)

    result = await engine.run(dag)
    assert await ti_states(engine, result.run_pk) == {
        "make": "success",
        "use": "failed",
        "clean": "success",
    }
    assert result.state is DagRunState.FAILED


async def test_fail_fast_stops_a_running_sibling(engine: Engine) -> None:
    started = threading.Event()

    with DAG("fail_fast", fail_fast=True) as dag:

        @task
        async def slow() -> None:
            started.set()
            await asyncio.sleep(3600)

        @task
        async def bad() -> None:
            await asyncio.to_thread(started.wait, 30)  # a threading.Event: any executor
            raise ValueError("bad broke")

        @task
        def after_slow() -> None:
            return None

        @teardown
        def cleanup() -> None:
            return None

        s = slow()
        b = bad()
        s >> after_slow()
        [s, b] >> cleanup()

    result = await engine.run(dag)
    rows = await ti_rows(engine, result.run_pk)
    assert {t: r.state for (t, _), r in rows.items()} == {
        "slow": "failed",
        "bad": "failed",
        "after_slow": "skipped",
        "cleanup": "success",  # teardowns still run (Airflow's fail_fast)
    }
    assert rows[("slow", -1)].error == "interrupted: fail_fast: task bad failed"
    assert rows[("after_slow", -1)].error == "fail_fast: task bad failed"
    assert result.state is DagRunState.FAILED


def latest_only_dag() -> DAG:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with DAG("latest", schedule="@daily", start_date=start) as dag:

        @task
        def report() -> None:
            return None

        LatestOnlyOperator(task_id="latest_only") >> report()
    return dag


async def test_latest_only_skips_a_run_that_is_not_the_latest(engine: Engine) -> None:
    dag = latest_only_dag()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    run = await engine.start_run(
        dag,
        run_type="scheduled",
        run_id="scheduled__2020",
        logical_date=old,
        data_interval=(old, old + timedelta(days=1)),
    )
    result = await run.done
    assert await ti_states(engine, result.run_pk) == {
        "latest_only": "success",
        "report": "skipped",
    }


async def test_latest_only_lets_the_latest_and_manual_runs_through(engine: Engine) -> None:
    dag = latest_only_dag()
    now = datetime.now(UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    run = await engine.start_run(
        dag,
        run_type="scheduled",
        run_id="scheduled__latest",
        logical_date=end - timedelta(days=1),
        data_interval=(end - timedelta(days=1), end),
    )
    result = await run.done
    assert (await ti_states(engine, result.run_pk))["report"] == "success"
    manual = await engine.run(dag)
    assert (await ti_states(engine, manual.run_pk))["report"] == "success"


async def test_a_branchs_skips_are_stored_with_its_success_and_survive_a_resume(
    settings: Any,
) -> None:
    with DAG("branch_resume") as dag:

        @task.branch
        def pick() -> str:
            return "chosen"

        @task(retries=1, retry_delay=0)  # a try lost to the stop is retried
        async def chosen(ti: Any) -> str:
            if ti.try_number == 1:
                await asyncio.sleep(3600)  # interrupted by the stop below
            return "done"

        @task
        def other() -> None:
            return None

        pick() >> [chosen(), other()]

    async with Engine(settings) as first:
        run = await first.start_run(dag, run_id="r1")
        await wait_until(first, run, lambda r: state_of(r, "chosen") is TaskState.RUNNING)
        # Written already, with the branch's success: nothing waits for the run's end.
        assert await ti_states(first, run.run_pk) == {
            "pick": "success",
            "chosen": "running",
            "other": "skipped",
        }
        first.request_shutdown("test stop", keep_runs=True)
        await run.done
    async with Engine(settings) as second:
        resumed = await second.start_run(dag, run_id="r1", resume=True)
        result = await resumed.done
        assert result.state is DagRunState.SUCCESS
        rows = await ti_rows(second, result.run_pk)
        assert {t: (r.state, r.try_number) for (t, _), r in rows.items()} == {
            "pick": ("success", 1),
            "chosen": ("success", 2),
            "other": ("skipped", 0),
        }
