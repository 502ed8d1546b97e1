"""Keyed XComs in the engine: multiple_outputs, do_xcom_push, subscripted outputs,
XComArgs nested in classic operators' template fields, and resume."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import pytest

from airloop import DAG, BaseOperator, Context, DagRunState, task
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError
from airloop.settings import Settings

from .support import keyed_xcoms, state_of, ti_rows, wait_until


class Totals(TypedDict):
    total: int
    items: list[str]


async def test_multiple_outputs_explicit_and_inferred(engine: Engine) -> None:
    with DAG("multi") as dag:

        @task(multiple_outputs=True)
        def explicit() -> Any:
            return {"x": 1, "y": [2]}

        @task
        def inferred_dict() -> dict[str, int]:
            return {"n": 5}

        @task
        def inferred_typed() -> Totals:
            return {"total": 3, "items": ["a"]}

        @task
        def not_a_dict() -> list[int]:  # no annotation-inferred keys
            return [1]

        @task(multiple_outputs=False)
        def opted_out() -> dict[str, int]:
            return {"z": 1}

        explicit()
        inferred_dict()
        inferred_typed()
        not_a_dict()
        opted_out()

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    stored = await keyed_xcoms(engine, result.run_pk)
    assert stored == {
        ("explicit", -1, "return_value"): {"x": 1, "y": [2]},
        ("explicit", -1, "x"): 1,
        ("explicit", -1, "y"): [2],
        ("inferred_dict", -1, "return_value"): {"n": 5},
        ("inferred_dict", -1, "n"): 5,
        ("inferred_typed", -1, "return_value"): {"total": 3, "items": ["a"]},
        ("inferred_typed", -1, "total"): 3,
        ("inferred_typed", -1, "items"): ["a"],
        ("not_a_dict", -1, "return_value"): [1],
        ("opted_out", -1, "return_value"): {"z": 1},
    }


async def test_multiple_outputs_needs_a_dict_and_fails_without_retry(engine: Engine) -> None:
    with DAG("multi_bad") as dag:

        @task(multiple_outputs=True, retries=2, retry_delay=0.01)
        def wrong() -> Any:
            return [1, 2]

        @task(multiple_outputs=True)
        def reserved() -> Any:
            return {"return_value": 1}

        wrong()
        reserved()

    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    rows = await ti_rows(engine, result.run_pk)
    assert rows["wrong", -1].try_number == 1
    assert "multiple_outputs=True but returned a list, not a dict" in rows["wrong", -1].error
    assert "XCom key 'return_value' is the return value's" in rows["reserved", -1].error
    assert await keyed_xcoms(engine, result.run_pk) == {}


async def test_do_xcom_push_false_stores_no_return_value(engine: Engine) -> None:
    received: list[Any] = []

    with DAG("quiet", default_args={"do_xcom_push": False}) as dag:

        @task
        def make() -> int:
            return 7

        @task(do_xcom_push=True)
        def take(value: Any) -> int:
            received.append(value)
            return 1

        take(make())

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert received == [None]  # as in Airflow: nothing stored, nothing passed
    assert await keyed_xcoms(engine, result.run_pk) == {("take", -1, "return_value"): 1}


async def test_subscripted_outputs_resolve_to_keys_or_items(engine: Engine) -> None:
    got: dict[str, Any] = {}

    class Pusher(BaseOperator):
        def execute(self, context: Context) -> None:
            context["ti"].xcom_push("pushed", {"deep": [10, 20]})

    with DAG("subscripts") as dag:

        @task
        def order() -> dict[str, Any]:  # inferred multiple_outputs
            return {"total": 12, "lines": [{"sku": "a"}]}

        @task(multiple_outputs=False)
        def plain() -> dict[str, Any]:
            return {"total": 99, "rows": [1, 2]}

        @task
        def numbers(n: int) -> list[int]:
            return [n, n * 10]

        @task
        def use(**kwargs: Any) -> None:
            got.update({k: v for k, v in kwargs.items() if k.startswith("v_")})

        o, p = order(), plain()
        mapped = numbers.expand(n=[1, 2])
        pusher = Pusher(task_id="pusher")
        use(
            v_total=o["total"],
            v_sku=o["lines"][0]["sku"],
            v_plain=p["total"],
            v_row=p["rows"][1],
            v_deep=pusher.output["pushed"]["deep"][1],
            v_mapped=mapped[1],
        )
        assert repr(o["lines"][0]) == "XComArg('order')['lines'][0]"

    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert got == {
        "v_total": 12,
        "v_sku": "a",
        "v_plain": 99,
        "v_row": 2,
        "v_deep": 20,
        "v_mapped": [10, 20],
    }


async def test_a_missing_subscript_fails_the_consumer_clearly(engine: Engine) -> None:
    with DAG("bad_subscript") as dag:

        @task
        def make() -> dict[str, int]:
            return {"a": 1}

        @task
        def use(value: int) -> None:
            return None

        use(make()["b"])

    result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    note = (await ti_rows(engine, result.run_pk))["use", -1].error
    assert "the output of task 'make' has no item ['b'] (it is a dict)" in note


def test_definition_errors() -> None:
    with DAG("defs"):

        @task
        def make() -> dict[str, list[int]]:
            return {"xs": [1]}

        @task
        def each(x: int) -> None:
            return None

        out = make()
        with pytest.raises(DagDefinitionError, match="over a subscripted output"):
            each.expand(x=out["xs"])
        with pytest.raises(TypeError, match="subscripted with a str or an int"):
            out[1.5]  # type: ignore[index]

        def noop() -> None:
            return None

        with pytest.raises(DagDefinitionError, match="do_xcom_push must be True or False"):
            task(do_xcom_push="no")(noop)()


class Report(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("inputs", "title")

    def __init__(self, *, inputs: Any, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inputs = inputs
        self.title = title

    def execute(self, context: Context) -> dict[str, Any]:
        return {"inputs": self.inputs, "title": self.title}


async def test_xcom_args_nested_in_template_fields_are_edges_and_values(engine: Engine) -> None:
    with DAG("nested") as dag:

        @task
        def a() -> int:
            return 1

        @task
        def b() -> dict[str, Any]:
            return {"k": 2, "text": "{{ not a template }}"}

        report = Report(
            task_id="report",
            inputs={
                "list": [a(), {"deep": (out := b())["k"]}],
                "literal": "{{ ds_nodash | length }}",
                "text": out["text"],  # a value: never rendered
            },
            title="{{ ti.xcom_pull(task_ids='a') }}",
        )
        assert report.upstream_task_ids == {"a", "b"}

    result = await engine.run(dag, logical_date=datetime(2026, 5, 4, tzinfo=UTC))
    assert result.state is DagRunState.SUCCESS, result.failed
    stored = await keyed_xcoms(engine, result.run_pk)
    assert stored["report", -1, "return_value"] == {
        "inputs": {"list": [1, {"deep": 2}], "literal": "8", "text": "{{ not a template }}"},
        "title": "1",
    }


def test_an_xcom_arg_in_a_plain_attribute_is_rejected() -> None:
    class Plain(BaseOperator):
        def __init__(self, *, value: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.value = value

    with DAG("plain"):

        @task
        def a() -> int:
            return 1

        with pytest.raises(DagDefinitionError, match="'value' is not a template field"):
            Plain(task_id="p", value=[a()])


async def test_resume_restores_keyed_xcoms(tmp_path: Path) -> None:
    phase = {"first": True}
    pulled: list[Any] = []

    with DAG("resumable") as dag:

        @task
        def produce(ti: Any) -> dict[str, int]:
            ti.xcom_push("extra", "pushed")
            return {"total": 3}

        @task(retries=1, retry_delay=0)
        async def gate() -> None:
            if phase["first"]:
                await asyncio.sleep(3600)  # interrupted by the stop below

        @task
        def consume(total: int, ti: Any) -> None:
            pulled.append((total, ti.xcom_pull(task_ids="produce", key="extra")))

        made = produce()
        made >> gate() >> consume(made["total"])

    settings = Settings(home=tmp_path, shutdown_grace_seconds=0.5)
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1")
        await wait_until(
            engine,
            run,
            lambda r: (
                state_of(r, "produce") is TaskState.SUCCESS
                and state_of(r, "gate") is TaskState.RUNNING
            ),
        )
        engine.request_shutdown("test stop", keep_runs=True)
        kept = await asyncio.wait_for(asyncio.shield(run.done), 30)
        assert kept.state is DagRunState.RUNNING
    phase["first"] = False
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1", resume=True)
        result = await asyncio.wait_for(asyncio.shield(run.done), 30)
        assert result.state is DagRunState.SUCCESS, result.failed
    assert pulled == [(3, "pushed")]
