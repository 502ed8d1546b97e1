"""Pools, pool_slots, max_active_tasks and priority_weight, measured in real runs."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, TaskState, task
from airloop.core.pools import PoolError
from airloop.engine.engine import Engine
from airloop.settings import Settings

from .support import Concurrency, ti_rows, wait_until


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_pool_limits_concurrency(tmp_path: Path) -> None:
    probe = Concurrency()
    others = Concurrency()

    with DAG("pool_limit") as dag:

        @task(pool="small")
        async def limited(i: int) -> str:
            return await probe.hold(f"limited{i}")

        @task
        async def unlimited(i: int) -> str:
            return await others.hold(f"unlimited{i}")

        for i in range(6):
            limited(i)
        for i in range(4):
            unlimited(i)

    async with Engine(Settings(home=tmp_path, pools={"small": 2})) as engine:
        run = await engine.start_run(dag)
        await asyncio.gather(probe.release_all(6), others.release_all(4))
        result = await run.done
        rows = await ti_rows(engine, result.run_pk)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert probe.max_tasks == 2  # reached the pool's size, never more
    assert len(probe.started) == 6
    assert others.max_tasks == 4  # default_pool tasks are not held back
    assert {r.pool for (t, _), r in rows.items() if t.startswith("limited")} == {"small"}


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_pool_slots_two_in_a_pool_of_two_runs_alone(tmp_path: Path) -> None:
    probe = Concurrency()

    with DAG("pool_slots") as dag:

        @task(pool="pair", pool_slots=2)
        async def big() -> str:
            return await probe.hold("big", slots=2)

        @task(pool="pair")
        async def small(i: int) -> str:
            return await probe.hold(f"small{i}")

        big()
        for i in range(3):
            small(i)

    async with Engine(Settings(home=tmp_path, pools={"pair": 2})) as engine:
        run = await engine.start_run(dag)
        await probe.release_all(4)
        result = await run.done

    assert result.state is DagRunState.SUCCESS, result.failed
    assert probe.max_slots == 2
    assert probe.max_tasks == 2  # two smalls did run together
    for snapshot in probe.snapshots:
        if "big" in snapshot:
            assert snapshot == {"big": 2}, probe.snapshots


async def test_unknown_pool_is_rejected_before_the_run_exists(engine: Engine) -> None:
    with DAG("pool_unknown") as dag:

        @task(pool="nowhere")
        def lost() -> None:
            raise AssertionError("must not run")

        lost()

    with pytest.raises(PoolError, match="'lost' uses pool 'nowhere', which does not exist"):
        await engine.run(dag)
    with pytest.raises(PoolError):
        await engine.start_run(dag)
    assert await engine.store.latest_runs() == []


async def test_pool_slots_larger_than_the_pool_is_rejected(tmp_path: Path) -> None:
    with DAG("pool_too_big") as dag:

        @task(pool="pair", pool_slots=3)
        def greedy() -> None:
            raise AssertionError("must not run")

        greedy()

    async with Engine(Settings(home=tmp_path, pools={"pair": 2})) as engine:
        with pytest.raises(PoolError, match="could never run"):
            await engine.run(dag)
        assert await engine.store.latest_runs() == []


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_max_active_tasks_caps_a_dag(engine: Engine) -> None:
    probe = Concurrency()

    with DAG("max_active", max_active_tasks=3) as dag:

        @task
        async def work(i: int) -> str:
            return await probe.hold(f"work{i}")

        for i in range(8):
            work(i)

    run = await engine.start_run(dag)
    await probe.release_all(8)
    result = await run.done

    assert result.state is DagRunState.SUCCESS
    assert probe.max_tasks == 3
    assert len(probe.started) == 8


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_settings_max_active_tasks_per_dag_is_the_default(tmp_path: Path) -> None:
    probe = Concurrency()

    with DAG("max_active_default") as dag:

        @task
        async def work(i: int) -> str:
            return await probe.hold(f"work{i}")

        for i in range(5):
            work(i)

    async with Engine(Settings(home=tmp_path, max_active_tasks_per_dag=2)) as engine:
        run = await engine.start_run(dag)
        await probe.release_all(5)
        result = await run.done

    assert result.state is DagRunState.SUCCESS
    assert probe.max_tasks == 2


async def test_priority_weight_orders_a_serialized_pool(tmp_path: Path) -> None:
    order: list[str] = []

    with DAG("priority") as dag:

        @task(pool="one")
        async def job(name: str) -> None:
            order.append(name)

        for name, weight in [("w1", 1), ("w5", 5), ("w3", 3), ("w10", 10), ("w2", 2)]:
            job.override(task_id=name, priority_weight=weight)(name)

    async with Engine(Settings(home=tmp_path, pools={"one": 1})) as engine:
        result = await engine.run(dag)
        rows = await ti_rows(engine, result.run_pk)

    assert result.state is DagRunState.SUCCESS
    assert order == ["w10", "w5", "w3", "w2", "w1"]
    assert {t: r.priority_weight for (t, _), r in rows.items()} == {
        "w1": 1,
        "w5": 5,
        "w3": 3,
        "w10": 10,
        "w2": 2,
    }


async def test_downstream_weight_rule_prefers_the_longer_branch(tmp_path: Path) -> None:
    order: list[str] = []

    with DAG("priority_downstream") as dag:

        @task(pool="one")
        async def root(name: str) -> None:
            order.append(name)

        @task
        async def tail() -> None:
            pass

        lone = root.override(task_id="lone")("lone")
        busy = root.override(task_id="busy")("busy")
        busy >> tail.override(task_id="t1")() >> tail.override(task_id="t2")()
        lone >> tail.override(task_id="t3", weight_rule="absolute")()

    async with Engine(Settings(home=tmp_path, pools={"one": 1})) as engine:
        result = await engine.run(dag)
        rows = await ti_rows(engine, result.run_pk)

    assert result.state is DagRunState.SUCCESS
    assert order == ["busy", "lone"]  # busy: 1 + 2 descendants = 3; lone: 1 + 1 = 2
    assert rows["busy", -1].priority_weight == 3
    assert rows["lone", -1].priority_weight == 2


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_pools_are_shared_by_concurrent_runs(tmp_path: Path) -> None:
    probe = Concurrency()

    def build(dag_id: str) -> DAG:
        with DAG(dag_id) as dag:

            @task(pool="one")
            async def exclusive() -> str:
                return await probe.hold(dag_id)

            exclusive()
        return dag

    async with Engine(Settings(home=tmp_path, pools={"one": 1})) as engine:
        first = await engine.start_run(build("shared_a"))
        second = await engine.start_run(build("shared_b"))
        await probe.release_all(2, within=3)  # correct code needs milliseconds
        results = [await first.done, await second.done]

    assert [r.state for r in results] == [DagRunState.SUCCESS, DagRunState.SUCCESS]
    assert probe.max_tasks == 1
    assert sorted(probe.started) == ["shared_a", "shared_b"]


async def test_max_active_tasks_holds_across_the_runs_of_a_dag(tmp_path: Path) -> None:
    """As in Airflow, max_active_tasks is per DAG: two runs share it."""
    from airloop.engine.engine import Engine
    from airloop.settings import Settings

    running = 0
    peak = 0

    with DAG("shared_limit", max_active_tasks=2) as dag:

        @task
        async def work(i: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

        work.expand(i=[1, 2, 3, 4])

    async with Engine(Settings(home=tmp_path)) as engine:
        first = await engine.start_run(dag, run_id="one")
        second = await engine.start_run(dag, run_id="two")
        results = await asyncio.gather(first.done, second.done)
    assert [r.state for r in results] == [DagRunState.SUCCESS, DagRunState.SUCCESS]
    assert peak == 2


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_a_lowered_max_active_tasks_is_never_exceeded_by_old_or_new_runs(
    engine: Engine,
) -> None:
    """The DAG file changed max_active_tasks from 3 to 1 while a run was going: from
    then on, neither that run nor a new one starts a task while the DAG has one
    running (one limit per DAG across its runs, its count kept: ADR 0019)."""
    probe = Concurrency()
    names = itertools.count()

    with DAG("lowered", max_active_tasks=3) as dag:

        @task
        async def work(i: int) -> str:
            return await probe.hold(f"work{i}.{next(names)}")

        for i in range(4):
            work(i)

    first = await engine.start_run(dag, run_id="first")
    await wait_until(engine, first, lambda r: r.counts().get(TaskState.RUNNING) == 3)
    dag.max_active_tasks = 1  # as a re-parsed file would say
    changed_at = len(probe.snapshots)
    second = await engine.start_run(dag, run_id="second")
    # Planned once (its tasks scheduled, or -- the bug -- started) before any ends.
    await wait_until(engine, second, lambda r: TaskState.NONE not in r.counts())
    await probe.release_all(8)
    assert (await first.done).ok
    assert (await second.done).ok
    after = probe.snapshots[changed_at:]
    assert len(after) == 5  # first's fourth task and second's four
    assert [len(s) for s in after] == [1] * 5, after


async def test_priority_holds_across_runs_sharing_a_pool(tmp_path: Path) -> None:
    """A slot freed in a pool goes to the most important ready task of ANY run, not to
    the run whose task freed it (one admission over all runs: ADR 0019)."""
    order: list[str] = []
    gate = asyncio.Event()

    with DAG("low") as low:

        @task(pool="one", priority_weight=1)
        async def background(i: int) -> None:
            order.append(f"background{i}")
            await gate.wait()

        for i in range(3):
            background(i)

    with DAG("high") as high:

        @task(pool="one", priority_weight=100)
        async def urgent() -> None:
            order.append("urgent")

        urgent()

    settings = Settings(home=tmp_path, pools={"default_pool": 8, "one": 1}, use_async=True)
    async with Engine(settings) as engine:
        first = await engine.start_run(low)
        await wait_until(engine, first, lambda r: r.counts().get(TaskState.RUNNING) == 1)
        second = await engine.start_run(high)
        await wait_until(engine, second, lambda r: TaskState.NONE not in r.counts())
        gate.set()
        assert (await first.done).ok
        assert (await second.done).ok
    # Whichever background task ran first, the urgent one is next.
    assert order[1] == "urgent", order
    assert sorted(order) == ["background0", "background1", "background2", "urgent"]
