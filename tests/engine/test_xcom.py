"""Return values: passed between sync and async tasks, stored in the xcom table as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.engine.engine import Engine
from airloop.settings import Settings

from .support import ti_rows, ti_states, xcom_map


async def test_values_flow_between_async_and_sync_tasks(engine: Engine) -> None:
    seen: dict[str, Any] = {}

    class Doubler(BaseOperator):
        """A classic operator with a sync execute, fed by ``.output`` downstream."""

        def execute(self, context: Context) -> list[int]:
            return [2, 4]

    with DAG("xcom_flow") as dag:

        @task
        async def produce() -> dict[str, Any]:
            return {"n": 1, "items": [1, 2], "name": "é"}

        @task
        def transform(data: dict[str, Any]) -> list[Any]:
            seen["transform"] = data
            return [data["n"], *data["items"], data["name"]]

        @task
        async def combine(values: list[Any], doubled: list[int]) -> str:
            seen["combine"] = (values, doubled)
            return f"{len(values)}+{len(doubled)}"

        @task
        def finish(text: str) -> tuple[str, int]:
            seen["finish"] = text
            return (text, 7)

        op = Doubler(task_id="doubler")
        finish(combine(transform(produce()), op.output))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert seen["transform"] == {"n": 1, "items": [1, 2], "name": "é"}
    assert seen["combine"] == ([1, 1, 2, "é"], [2, 4])
    assert seen["finish"] == "4+2"
    stored = await xcom_map(engine, result.run_pk)
    assert set(stored) == {
        ("produce", -1),
        ("transform", -1),
        ("combine", -1),
        ("finish", -1),
        ("doubler", -1),
    }
    assert json.loads(stored["produce", -1]) == {"n": 1, "items": [1, 2], "name": "é"}
    assert json.loads(stored["transform", -1]) == [1, 1, 2, "é"]
    assert json.loads(stored["combine", -1]) == "4+2"
    assert json.loads(stored["finish", -1]) == ["4+2", 7]  # a tuple is stored as a JSON list
    rows = await engine.store.xcom_values(result.run_pk)
    assert all(r.size == len(r.value.encode()) for r in rows)


async def test_none_return_stores_nothing(engine: Engine) -> None:
    received: list[Any] = []

    with DAG("xcom_none") as dag:

        @task
        async def nothing() -> None:
            return None

        @task
        def implicit() -> None:
            pass

        @task
        def consume(a: Any, b: Any) -> int:
            received.append((a, b))
            return 0

        consume(nothing(), implicit())

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert received == [(None, None)]
    stored = await xcom_map(engine, result.run_pk)
    assert set(stored) == {("consume", -1)}
    assert stored["consume", -1] == "0"  # a falsy value that is not None is stored


async def test_unserializable_return_fails_without_retry(engine: Engine) -> None:
    calls: list[int] = []

    with DAG("xcom_bad") as dag:

        @task(retries=3, retry_delay=0.01)
        def returns_a_set() -> set[int]:
            calls.append(1)
            return {1, 2}

        @task(retries=3, retry_delay=0.01)
        async def returns_nan() -> float:
            return float("nan")

        @task
        def downstream(value: Any) -> None:
            raise AssertionError("must not run")

        downstream(returns_a_set())
        returns_nan()

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    assert calls == [1]
    rows = await ti_rows(engine, result.run_pk)
    bad = rows["returns_a_set", -1]
    assert bad.state == "failed"
    assert bad.try_number == 1
    assert bad.error.startswith("XComError: ")
    assert "'returns_a_set' returned a set that cannot be stored as XCom (JSON)" in bad.error
    nan = rows["returns_nan", -1]
    assert (nan.state, nan.try_number) == ("failed", 1)
    assert "cannot be stored as XCom" in nan.error
    assert rows["downstream", -1].state == "upstream_failed"
    assert await xcom_map(engine, result.run_pk) == {}


async def test_return_value_over_the_size_limit_fails(tmp_path: Path) -> None:
    limit = 100
    with DAG("xcom_big") as dag:

        @task(retries=2, retry_delay=0.01)
        def too_big() -> str:
            return "x" * 200  # 202 bytes of JSON

        @task
        async def just_fits() -> str:
            return "y" * (limit - 2)  # exactly 100 bytes of JSON

        too_big()
        just_fits()

    async with Engine(Settings(home=tmp_path, xcom_max_bytes=limit)) as engine:
        result = await engine.run(dag)
        rows = await ti_rows(engine, result.run_pk)
        stored = await xcom_map(engine, result.run_pk)

    assert result.state is DagRunState.FAILED
    big = rows["too_big", -1]
    assert (big.state, big.try_number) == ("failed", 1)
    assert big.error.startswith("XComError: ")
    assert "202 bytes" in big.error
    assert "limit of 100" in big.error
    assert "xcom_max_bytes" in big.error
    assert rows["just_fits", -1].state == "success"
    assert stored == {("just_fits", -1): json.dumps("y" * (limit - 2))}
    assert result.failed == [("too_big", big.error)]


async def test_xcom_rows_match_state_counts(engine: Engine) -> None:
    """The result's counts, the DB's counts and the stored XComs agree."""
    with DAG("xcom_counts") as dag:

        @task
        def one() -> int:
            return 1

        @task
        async def two(x: int) -> int:
            return x + 1

        two(one())

    result = await engine.run(dag)

    assert result.counts == {"success": 2}
    assert await engine.store.state_counts(result.run_pk) == {"success": 2}
    assert await ti_states(engine, result.run_pk) == {"one": "success", "two": "success"}
    assert await xcom_map(engine, result.run_pk) == {("one", -1): "1", ("two", -1): "2"}
