"""Each consumer gets its own copy of an upstream output, and only a final one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, TriggerRule, task
from airloop.engine.engine import Engine
from airloop.settings import Settings


async def xcoms(engine: Engine, run_pk: int) -> dict[str, object]:
    return {x.task_id: json.loads(x.value) for x in await engine.store.xcom_values(run_pk)}


async def test_a_task_mutating_its_input_does_not_change_what_others_get(tmp_path: Path) -> None:
    with DAG("alias") as dag:

        @task
        def make() -> list[int]:
            return [1, 2, 3]

        @task(retries=1, retry_delay=0.01)
        def eat(xs: list[int], try_number: int) -> int:
            xs.pop()
            if try_number == 1:
                raise RuntimeError("fails after mutating its input")
            return len(xs)

        @task
        def look(xs: list[int]) -> int:
            return len(xs)

        @task
        def pick(x: dict[str, list[int]]) -> int:
            x["v"].append(99)
            return len(x["v"])

        made = make()
        eat(made)
        look(made)
        pick.expand(x=[{"v": [1]}, {"v": [1]}])

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await xcoms(engine, result.run_pk)
    assert values["eat"] == 2  # its retry got a fresh [1, 2, 3]
    assert values["look"] == 3


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_an_early_consumer_does_not_freeze_a_missing_output(tmp_path: Path) -> None:
    release = asyncio.Event()

    with DAG("stale") as dag:

        @task
        async def slow() -> int:
            await release.wait()
            return 5

        @task
        async def fast() -> int:
            return 1

        @task(trigger_rule=TriggerRule.ONE_SUCCESS)
        async def early(a: int | None, b: int | None) -> list[int | None]:
            release.set()
            return [a, b]

        @task
        async def late(a: int) -> int:
            return a

        s = slow()
        early(s, fast())
        late(s)

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await xcoms(engine, result.run_pk)
    assert values["early"] == [None, 1]  # slow had not finished when early started
    assert values["late"] == 5
