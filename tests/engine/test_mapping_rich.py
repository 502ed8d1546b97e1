"""Richer mapping, end to end: expand_kwargs, XComArg.zip/.map, map_index_template, the cap."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError
from airloop.settings import Settings

from .support import ti_rows, xcom_map


def outputs(stored: dict[tuple[str, int], str], task_id: str) -> list[Any]:
    return [json.loads(v) for (t, i), v in sorted(stored.items()) if t == task_id and i >= 0]


class Greet(BaseOperator):
    def __init__(self, *, name: str, greeting: str = "hello", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.greeting = greeting

    def execute(self, context: Context) -> str:
        return f"{self.greeting} {self.name}"


async def test_expand_kwargs_over_a_literal_list(engine: Engine) -> None:
    with DAG("kw_literal") as dag:

        @task
        def add(x: int, y: int, z: int = 0) -> int:
            return x + y + z

        add.partial(z=100).expand_kwargs([{"x": 1, "y": 2}, {"x": 10, "y": 20}])
        Greet.partial(task_id="greet", greeting="hi").expand_kwargs(
            [{"name": "ann"}, {"name": "bob"}, {"name": "cy"}]
        )

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    stored = await xcom_map(engine, result.run_pk)
    assert outputs(stored, "add") == [103, 130]
    assert outputs(stored, "greet") == ["hi ann", "hi bob", "hi cy"]


async def test_expand_kwargs_from_an_upstream_output(engine: Engine) -> None:
    with DAG("kw_upstream") as dag:

        @task
        def configs() -> list[dict[str, Any]]:
            return [{"name": "ann", "greeting": "hey"}, {"name": "bob"}]

        Greet.partial(task_id="greet").expand_kwargs(configs())

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    stored = await xcom_map(engine, result.run_pk)
    assert outputs(stored, "greet") == ["hey ann", "hello bob"]


async def test_expand_kwargs_rejects_a_non_dict_and_an_unknown_argument(engine: Engine) -> None:
    with DAG("kw_bad") as dag:

        @task
        def items() -> list[Any]:
            return [{"x": 1}, 7]

        @task
        def unknown() -> list[Any]:
            return [{"x": 1}, {"x": 2, "nope": 3}]

        @task
        def use(x: int) -> int:
            return x

        use.expand_kwargs(items())
        use.override(task_id="use2").expand_kwargs(unknown())
        Greet.partial(task_id="greet").expand_kwargs(unknown())

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    rows = await ti_rows(engine, result.run_pk)
    assert rows["use", 0].state == "success"
    assert rows["use", 1].state == "failed"
    assert "task 'use', map index 1: expand_kwargs() needs a dict, got int" in rows["use", 1].error
    assert rows["use2", 1].state == "failed"
    assert "task 'use2', map index 1" in rows["use2", 1].error
    assert "unknown argument 'nope'" in rows["use2", 1].error
    assert "task 'greet', map index 0" in rows["greet", 0].error
    assert "unknown argument 'x'" in rows["greet", 0].error


def test_expand_kwargs_literal_errors_at_definition() -> None:
    with DAG("kw_defs"):

        @task
        def use(x: int) -> int:
            return x

        with pytest.raises(DagDefinitionError, match=r"task 'use', map index 1: .*got str"):
            use.expand_kwargs([{"x": 1}, "x"])
        with pytest.raises(DagDefinitionError, match=r"map index 0: .*unknown argument 'y'"):
            use.expand_kwargs([{"y": 1}])
        with pytest.raises(DagDefinitionError, match=r"task setting 'retries'"):
            use.expand_kwargs([{"x": 1, "retries": 3}])
        with pytest.raises(DagDefinitionError, match=r"both partial\(\) and expand_kwargs"):
            use.partial(x=1).expand_kwargs([{"x": 2}])


async def test_zip_without_and_with_fillvalue(engine: Engine) -> None:
    with DAG("zips") as dag:

        @task
        def letters() -> list[str]:
            return ["a", "b", "c"]

        @task
        def numbers() -> list[int]:
            return [1, 2]

        @task
        def pair(p: tuple[Any, ...]) -> str:
            return f"{p[0]}{p[1]}"

        short = pair.override(task_id="short").expand(p=letters().zip(numbers()))
        long = pair.override(task_id="long").expand(p=letters().zip(numbers(), fillvalue="-"))
        assert short is not long

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    stored = await xcom_map(engine, result.run_pk)
    assert outputs(stored, "short") == ["a1", "b2"]
    assert outputs(stored, "long") == ["a1", "b2", "c-"]


async def test_map_applies_a_function_per_element_off_the_loop(engine: Engine) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def to_kwargs(name: str) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return {"name": name.title()}

    def double(x: int) -> int:
        threads.append(threading.get_ident())
        return 2 * x

    with DAG("maps") as dag:

        @task
        def names() -> list[str]:
            return ["ann", "bob"]

        @task
        def nums() -> list[int]:
            return [1, 2, 3]

        @task
        def show(value: Any) -> Any:
            return value

        Greet.partial(task_id="greet").expand_kwargs(names().map(to_kwargs))
        show.expand(value=nums().map(double))
        show.override(task_id="zipped").expand(value=nums().map(double).zip(names()))

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    stored = await xcom_map(engine, result.run_pk)
    assert outputs(stored, "greet") == ["hello Ann", "hello Bob"]
    assert outputs(stored, "show") == [2, 4, 6]
    assert outputs(stored, "zipped") == [[2, "ann"], [4, "bob"]]
    assert len(threads) == 2 + 3 + 2
    assert loop_thread not in threads  # never on the scheduler's loop


async def test_a_failing_map_function_fails_that_instance(engine: Engine) -> None:
    def invert(x: int) -> float:
        return 1 / x

    with DAG("map_fails") as dag:

        @task
        def nums() -> list[int]:
            return [1, 0]

        @task
        def show(value: Any) -> Any:
            return value

        show.expand(value=nums().map(invert))

    result = await engine.run(dag)

    rows = await ti_rows(engine, result.run_pk)
    assert rows["show", 0].state == "success"
    assert rows["show", 1].state == "failed"
    assert "task 'show', map index 1: its .map() function raised ZeroDivisionError" in (
        rows["show", 1].error
    )


def test_map_and_zip_results_only_go_to_expand() -> None:
    with DAG("map_defs"):

        @task
        def nums() -> list[int]:
            return [1]

        @task
        def show(value: Any) -> Any:
            return value

        with pytest.raises(DagDefinitionError, match=r"can only be given to \.expand\(\)"):
            show(nums().map(str))

        async def coro(x: int) -> int:
            return x

        with pytest.raises(DagDefinitionError, match="not an async one"):
            nums().map(coro)
        with pytest.raises(DagDefinitionError, match="needs at least one other"):
            nums().zip()


async def test_map_index_template_labels_each_instance(engine: Engine) -> None:
    with DAG("labels") as dag:

        @task(map_index_template="file {{ task.op_kwargs['path'] }}")
        def load(path: str) -> str:
            return path

        load.expand(path=["a.csv", "b.csv"])
        Greet.partial(
            task_id="greet", map_index_template="{{ task.name }} on {{ ti.map_index }}"
        ).expand_kwargs([{"name": "ann"}])
        Greet.partial(task_id="broken", map_index_template="{{ nothing.here }}").expand(name=["x"])

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    rows = await ti_rows(engine, result.run_pk)
    assert rows["load", 0].rendered_map_index == "file a.csv"
    assert rows["load", 1].rendered_map_index == "file b.csv"
    assert rows["greet", 0].rendered_map_index == "ann on 0"
    assert rows["broken", 0].rendered_map_index is None  # logged, the try still succeeded


async def test_a_failed_instance_is_labelled_in_the_summary(engine: Engine) -> None:
    with DAG("labels_failed") as dag:

        @task(map_index_template="{{ task.op_kwargs['x'] }}")
        def check(x: str) -> None:
            if x == "bad":
                raise ValueError("bad input")

        check.expand(x=["good", "bad"])

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    assert [label for label, _ in result.failed] == ["check[1] (bad)"]
    rows = await ti_rows(engine, result.run_pk)
    assert rows["check", 1].rendered_map_index == "bad"


async def test_expansion_past_max_map_length_fails_the_task(settings: Settings) -> None:
    with DAG("capped") as dag:

        @task
        def many() -> list[int]:
            return list(range(5))

        @task
        def show(value: Any) -> Any:
            return value

        @task
        def product(a: int, b: int) -> int:
            return a * b

        show.expand(value=many())
        show.override(task_id="literal").expand(value=[1, 2, 3])
        product.expand(a=[1, 2], b=[1, 2])

    capped = settings.model_copy(update={"max_map_length": 3})
    async with Engine(capped) as engine:
        result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    errors = dict(result.failed)
    assert errors["show"] == (
        "task 'show' would expand to 5 task instances, more than max_map_length (3); "
        "raise the setting max_map_length or map over fewer elements"
    )
    assert "4 task instances" in errors["product"]
    assert "literal" not in errors
