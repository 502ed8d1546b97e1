"""Dynamic task mapping, end to end: expansion rows, map-index order, empty lists."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, TriggerRule, task
from airloop.engine.engine import Engine

from .support import ti_rows, ti_states, xcom_map


def mapped_indexes(rows: dict[tuple[str, int], Any], task_id: str) -> list[int]:
    return sorted(i for (t, i) in rows if t == task_id)


async def test_expand_over_a_literal_list(engine: Engine) -> None:
    collected: list[Any] = []

    with DAG("map_literal") as dag:

        @task
        async def square(x: int) -> int:
            return x * x

        @task
        def total(values: list[int]) -> int:
            collected.append(values)
            return sum(values)

        total(square.expand(x=[1, 2, 3, 4]))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert collected == [[1, 4, 9, 16]]
    rows = await ti_rows(engine, result.run_pk)
    assert mapped_indexes(rows, "square") == [0, 1, 2, 3]
    assert all(rows["square", i].state == "success" for i in range(4))
    assert ("square", -1) not in rows  # the placeholder became map index 0
    stored = await xcom_map(engine, result.run_pk)
    assert [stored["square", i] for i in range(4)] == ["1", "4", "9", "16"]
    assert stored["total", -1] == "30"
    assert result.counts == {"success": 5}


async def test_expand_over_an_upstream_list_known_only_at_run_time(engine: Engine) -> None:
    collected: list[Any] = []

    with DAG("map_runtime") as dag:

        @task
        def make(n: int) -> list[str]:
            return [f"item{i}" for i in range(n)]

        @task
        async def shout(word: str, map_index: int) -> str:
            return f"{map_index}:{word.upper()}"

        @task
        def gather(words: list[str]) -> None:
            collected.append(words)

        gather(shout.expand(word=make(7)))

    result = await engine.run(dag, params={})

    assert result.state is DagRunState.SUCCESS
    expected = [f"{i}:ITEM{i}" for i in range(7)]
    assert collected == [expected]  # the list of outputs, in map-index order
    rows = await ti_rows(engine, result.run_pk)
    assert mapped_indexes(rows, "shout") == list(range(7))
    assert {rows["shout", i].operator for i in range(7)} == {"PythonTaskOperator"}
    stored = await xcom_map(engine, result.run_pk)
    assert [json.loads(stored["shout", i]) for i in range(7)] == expected


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_downstream_order_is_map_index_order_not_finish_order(engine: Engine) -> None:
    """Later map indexes finish first; the consumer still gets index order."""
    import asyncio

    gates = [asyncio.Event() for _ in range(4)]
    finished: list[int] = []
    collected: list[Any] = []

    with DAG("map_order") as dag:

        @task
        async def slow(i: int, map_index: int) -> int:
            # index 3 finishes first, then 2, 1, 0: each releases the one before it
            if map_index < 3:
                await gates[map_index + 1].wait()
            finished.append(map_index)
            gates[map_index].set()
            return i * 10

        @task
        def gather(values: list[int]) -> None:
            collected.append(values)

        gather(slow.expand(i=[0, 1, 2, 3]))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert finished == [3, 2, 1, 0]
    assert collected == [[0, 10, 20, 30]]


async def test_expand_over_an_empty_literal_list_skips(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("map_empty_literal") as dag:

        @task
        def each(x: int) -> int:
            ran.append("each")
            return x

        @task
        def after(values: list[int]) -> None:
            ran.append("after")

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def cleanup(values: list[int]) -> int:
            ran.append("cleanup")
            return len(values)

        mapped = each.expand(x=[])
        after(mapped)
        cleanup(mapped)

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert sorted(ran) == ["cleanup"]
    rows = await ti_rows(engine, result.run_pk)
    assert rows["each", -1].state == "skipped"
    assert "empty" in rows["each", -1].error
    assert rows["after", -1].state == "skipped"
    assert rows["cleanup", -1].state == "success"
    assert (await xcom_map(engine, result.run_pk))["cleanup", -1] == "0"


async def test_expand_over_an_empty_run_time_list_skips(engine: Engine) -> None:
    ran: list[str] = []

    with DAG("map_empty_runtime") as dag:

        @task
        async def nothing_to_do() -> list[int]:
            return []

        @task
        async def each(x: int) -> None:
            ran.append("each")

        @task
        def after(values: list[Any]) -> None:
            ran.append("after")

        after(each.expand(x=nothing_to_do()))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert ran == []
    assert await ti_states(engine, result.run_pk) == {
        "nothing_to_do": "success",
        "each": "skipped",
        "after": "skipped",
    }


async def test_cross_product_of_two_expand_arguments(engine: Engine) -> None:
    collected: list[Any] = []

    with DAG("map_cross") as dag:

        @task
        def letters() -> list[str]:
            return ["a", "b", "c"]

        @task
        async def pair(n: int, letter: str) -> str:
            return f"{n}{letter}"

        @task
        def gather(values: list[str]) -> None:
            collected.append(values)

        gather(pair.expand(n=[1, 2], letter=letters()))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    # Row-major, the last expand() argument varies fastest (as in Airflow).
    assert collected == [["1a", "1b", "1c", "2a", "2b", "2c"]]
    rows = await ti_rows(engine, result.run_pk)
    assert mapped_indexes(rows, "pair") == [0, 1, 2, 3, 4, 5]


async def test_partial_then_expand(engine: Engine) -> None:
    collected: list[Any] = []

    with DAG("map_partial") as dag:

        @task
        def base() -> int:
            return 100

        @task
        def add(x: int, y: int, z: int) -> int:
            return x + y + z

        @task
        def gather(values: list[int]) -> None:
            collected.append(values)

        gather(add.partial(y=10, z=base(), retries=2).expand(x=[1, 2, 3]))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert collected == [[111, 112, 113]]
    rows = await ti_rows(engine, result.run_pk)
    assert {rows["add", i].max_tries for i in range(3)} == {3}


async def test_mapped_classic_operator(engine: Engine) -> None:
    collected: list[Any] = []

    class Multiply(BaseOperator):
        def __init__(self, *, x: int, factor: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.x = x
            self.factor = factor

        def execute(self, context: Context) -> dict[str, int]:
            return {"index": context["map_index"], "value": self.x * self.factor}

    with DAG("map_classic") as dag:
        mapped = Multiply.partial(task_id="multiply", factor=3).expand(x=[5, 6, 7])

        @task
        def gather(values: list[dict[str, int]]) -> None:
            collected.append(values)

        gather(mapped.output)

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert collected == [
        [{"index": 0, "value": 15}, {"index": 1, "value": 18}, {"index": 2, "value": 21}]
    ]
    rows = await ti_rows(engine, result.run_pk)
    assert mapped_indexes(rows, "multiply") == [0, 1, 2]
    assert {rows["multiply", i].operator for i in range(3)} == {"Multiply"}


async def test_one_failed_mapped_instance(engine: Engine) -> None:
    """One mapped instance fails: the rest succeed, the consumer is upstream_failed."""
    with DAG("map_fail") as dag:

        @task
        def check(x: int) -> int:
            if x == 2:
                raise ValueError(f"bad value {x}")
            return x

        @task
        def gather(values: list[int]) -> int:
            return sum(values)

        gather(check.expand(x=[1, 2, 3]))

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    assert await ti_states(engine, result.run_pk) == {
        "check[0]": "success",
        "check[1]": "failed",
        "check[2]": "success",
        "gather": "upstream_failed",
    }
    assert result.failed == [("check[1]", "ValueError: bad value 2")]


async def test_expand_over_the_outputs_of_a_mapped_task(engine: Engine) -> None:
    collected: list[Any] = []

    with DAG("map_chain") as dag:

        @task
        def first(x: int) -> list[int]:
            return [x, x]

        @task
        async def second(pair: list[int]) -> int:
            return sum(pair)

        @task
        def gather(values: list[int]) -> None:
            collected.append(values)

        gather(second.expand(pair=first.expand(x=[1, 2, 3])))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert collected == [[2, 4, 6]]
    rows = await ti_rows(engine, result.run_pk)
    assert mapped_indexes(rows, "second") == [0, 1, 2]


async def test_map_over_a_value_that_is_not_a_list_fails(engine: Engine) -> None:
    with DAG("map_not_list") as dag:

        @task
        def scalar() -> int:
            return 5

        @task
        def each(x: int) -> int:
            return x

        each.expand(x=scalar())

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    rows = await ti_rows(engine, result.run_pk)
    assert rows["each", -1].state == "failed"
    assert "did not return a list" in rows["each", -1].error


async def test_mapped_classic_operator_with_a_bad_argument_fails_the_task(engine: Engine) -> None:
    class Strict(BaseOperator):
        def __init__(self, *, x: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.x = x

        def execute(self, context: Context) -> int:
            return self.x

    with DAG("map_bad_kwarg") as dag:
        Strict.partial(task_id="strict", unknown=1).expand(x=[1, 2])

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    rows = await ti_rows(engine, result.run_pk)
    for i in range(2):
        row = rows["strict", i]
        assert row.state == "failed"
        assert row.error.startswith("cannot resolve inputs: DagDefinitionError: task ")
        assert "unknown" in row.error
