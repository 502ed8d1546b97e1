"""Mapped task groups end to end (ADR 0029): per-index instances, per-index
dependencies inside the group, all instances after it, xcom_pull and map_index
inside it, and a resume that restores the per-index instances."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, XComArg, task, task_group
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.settings import Settings

from .support import keyed_xcoms, state_of, ti_states, wait_until


@pytest.mark.parametrize("source", ["literal", "upstream"])
async def test_a_failure_in_one_index_fails_only_that_indexs_downstream(
    engine: Engine, source: str
) -> None:
    with DAG("mtg_literal") as dag:

        @task
        def elements() -> list[int]:
            return [1, 2, 3]

        @task
        def check(x: int) -> int:
            if x == 2:
                raise RuntimeError("bad element")
            return x * 10

        @task
        def label(v: int, x: int, ti: Any = None) -> Any:
            return {
                "v": v,
                "x": x,
                "map_index": ti.map_index,
                "pulled": ti.xcom_pull(task_ids="grp.check"),
                "pulled_same": ti.xcom_pull(task_ids="grp.check", map_indexes=ti.map_index),
            }

        @task_group
        def grp(x: int) -> XComArg:
            return label(check(x), x)

        @task(trigger_rule="all_done")
        def collect(values: list[Any], ti: Any = None) -> Any:
            return {"values": values, "pulled": ti.xcom_pull(task_ids="grp.check")}

        @task
        def strict(values: list[Any]) -> None:
            raise AssertionError("never runs: an instance of the group failed")

        # A literal list, or a task's output: the length is then decided at run time.
        out = grp.expand(x=[1, 2, 3] if source == "literal" else elements())
        collect(out)
        strict(out)

    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    states = await ti_states(engine, result.run_pk)
    if source == "upstream":
        assert states.pop("elements") == "success"
    assert states == {
        "grp.check[0]": "success",
        "grp.check[1]": "failed",
        "grp.check[2]": "success",
        "grp.label[0]": "success",
        "grp.label[1]": "upstream_failed",
        "grp.label[2]": "success",
        "collect": "success",
        "strict": "upstream_failed",
    }
    stored = await keyed_xcoms(engine, result.run_pk)
    first = {"v": 10, "x": 1, "map_index": 0, "pulled": 10, "pulled_same": 10}
    third = {"v": 30, "x": 3, "map_index": 2, "pulled": 30, "pulled_same": 30}
    assert stored["grp.label", 0, "return_value"] == first
    assert stored["grp.label", 2, "return_value"] == third
    # After the group: the list over the instances that succeeded, as after a mapped task.
    assert stored["collect", -1, "return_value"] == {"values": [first, third], "pulled": [10, 30]}


@pytest.mark.async_executor
async def test_an_upstream_output_decides_the_length_and_indexes_do_not_wait_for_each_other(
    engine: Engine,
) -> None:
    # first[0] waits until second[1] ran: were second[1] waiting for every instance of
    # first (not only first[1]), the run would never end.
    second_one_ran = asyncio.Event()

    with DAG("mtg_xcomarg") as dag:

        @task
        def numbers() -> list[int]:
            return [4, 5]

        @task
        async def first(x: int, ti: Any = None) -> int:
            if ti.map_index == 0:
                await second_one_ran.wait()
            return x + 1

        @task
        async def second(y: int, scale: int, ti: Any = None) -> int:
            if ti.map_index == 1:
                second_one_ran.set()
            return y * scale

        @task
        def audit(x: int) -> int:
            return -x

        @task
        def gather(values: list[int]) -> list[int]:
            return values

        @task_group
        def grp(x: int, scale: int) -> XComArg:
            done = second(first(x), scale)
            check = audit(x)
            done >> check
            return check

        result_of = grp.partial(scale=10).expand(x=numbers())
        gather(result_of)

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    stored = await keyed_xcoms(engine, result.run_pk)
    assert [stored["grp.second", i, "return_value"] for i in (0, 1)] == [50, 60]
    assert [stored["grp.audit", i, "return_value"] for i in (0, 1)] == [-4, -5]
    assert stored["gather", -1, "return_value"] == [-4, -5]
    states = await ti_states(engine, result.run_pk)
    assert sorted(k for k in states if k.startswith("grp.")) == [
        "grp.audit[0]",
        "grp.audit[1]",
        "grp.first[0]",
        "grp.first[1]",
        "grp.second[0]",
        "grp.second[1]",
    ]


async def test_an_empty_expansion_skips_the_group(engine: Engine) -> None:
    with DAG("mtg_empty") as dag:

        @task
        def nothing() -> list[int]:
            return []

        @task
        def one(x: int) -> int:
            return x

        @task_group
        def grp(x: int) -> XComArg:
            return one(one.override(task_id="before")(x))

        @task(trigger_rule="all_done")
        def after(values: list[int]) -> list[int]:
            return values

        after(grp.expand(x=nothing()))

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    states = await ti_states(engine, result.run_pk)
    assert states["grp.before"] == states["grp.one"] == "skipped"
    assert states["after"] == "success"


async def test_resume_restores_the_per_index_instances(tmp_path: Path, database_url: str) -> None:
    """On each backend (SQLite, PostgreSQL, MariaDB)."""
    phase = {"first": True}
    calls: list[tuple[str, int]] = []

    with DAG("mtg_resume") as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task(retries=1, retry_delay=0)
        async def slow(x: int, ti: Any = None) -> int:
            calls.append(("slow", ti.map_index))
            if phase["first"] and ti.map_index == 1:
                await asyncio.sleep(3600)  # interrupted by the stop below
            return x * 100

        @task
        async def then(v: int, ti: Any = None) -> int:
            calls.append(("then", ti.map_index))
            return v + ti.xcom_pull(task_ids="grp.slow")

        @task_group
        def grp(x: int) -> XComArg:
            return then(slow(x))

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        total(grp.expand(x=numbers()))

    settings = Settings(home=tmp_path, database_url=database_url, shutdown_grace_seconds=0.5)
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1")
        await wait_until(
            engine,
            run,
            lambda r: (
                state_of(r, "grp.then", 0) is TaskState.SUCCESS
                and state_of(r, "grp.then", 2) is TaskState.SUCCESS
                and state_of(r, "grp.slow", 1) is TaskState.RUNNING
            ),
        )
        assert state_of(run, "grp.then", 1) is TaskState.NONE
        engine.request_shutdown("test stop", keep_runs=True)
        kept = await asyncio.wait_for(asyncio.shield(run.done), 30)
        assert kept.state is DagRunState.RUNNING
    phase["first"] = False
    calls.clear()
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1", resume=True)
        result = await asyncio.wait_for(asyncio.shield(run.done), 30)
        assert result.state is DagRunState.SUCCESS, result.failed
        stored = await keyed_xcoms(engine, result.run_pk)
    # Only index 1 ran again: the finished indexes were restored, not re-run.
    assert sorted(calls) == [("slow", 1), ("then", 1)]
    assert [stored["grp.then", i, "return_value"] for i in range(3)] == [200, 400, 600]
    assert stored["total", -1, "return_value"] == 1200


async def test_a_group_over_a_mapped_tasks_outputs_and_over_a_failed_source(
    engine: Engine,
) -> None:
    with DAG("mtg_sources") as dag:

        @task
        def square(x: int) -> int:
            return x * x

        @task
        def broken() -> list[int]:
            raise RuntimeError("no list today")

        @task
        def shift(v: int, by: int) -> int:
            return v + by

        @task_group
        def grp(v: int) -> XComArg:
            return shift(shift.override(task_id="first")(v, 1), 100)

        @task_group
        def never(v: int) -> XComArg:
            return shift(v, 0)

        @task(trigger_rule="all_done")
        def seen(values: list[int]) -> list[int]:
            return values

        seen(grp.expand(v=square.expand(x=[1, 2, 3])))
        never.expand(v=broken())

    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    stored = await keyed_xcoms(engine, result.run_pk)
    assert [stored["grp.shift", i, "return_value"] for i in range(3)] == [102, 105, 110]
    assert stored["seen", -1, "return_value"] == [102, 105, 110]
    states = await ti_states(engine, result.run_pk)
    assert states["broken"] == "failed"
    assert states["never.shift"] == "upstream_failed"
