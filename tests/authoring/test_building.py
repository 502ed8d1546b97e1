"""Building DAGs: dependencies, defaults, mapping, and the errors authors get."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airloop import (
    DAG,
    BaseOperator,
    Context,
    DagDefinitionError,
    Param,
    TriggerRule,
    task,
)
from airloop.authoring.mapped import MappedOperator
from airloop.authoring.xcom_arg import ValuesLookup
from airloop.exceptions import CycleError, DuplicateTaskIdError, ParamValidationError


class Echo(BaseOperator):
    def __init__(self, *, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def execute(self, context: Context) -> Any:
        return self.value


def test_shift_operators_and_lists() -> None:
    with DAG("d") as dag:
        a, b, c, d = (Echo(task_id=x) for x in "abcd")
        a >> [b, c] >> d
    assert dag.get_task("a").downstream_task_ids == {"b", "c"}
    assert dag.get_task("d").upstream_task_ids == {"b", "c"}
    with DAG("e") as dag2:
        x, y = Echo(task_id="x"), Echo(task_id="y")
        y << x
        [Echo(task_id="z")] >> y
    assert dag2.get_task("y").upstream_task_ids == {"x", "z"}


def test_task_calls_wire_xcom_dependencies_and_suffix_repeated_ids() -> None:
    with DAG("d") as dag:

        @task
        def one() -> int:
            return 1

        @task
        def add(a: int, b: int) -> int:
            return a + b

        add(one(), one())
    assert dag.task_ids == ["one", "one__1", "add"]
    assert dag.get_task("add").upstream_task_ids == {"one", "one__1"}


def test_default_args_apply_and_explicit_arguments_win() -> None:
    with DAG("d", default_args={"retries": 3, "retry_delay": timedelta(seconds=5)}) as dag:
        a = Echo(task_id="a")
        b = Echo(task_id="b", retries=0)
    assert a.settings.retries == 3
    assert a.settings.retry_delay == 5.0
    assert b.settings.retries == 0
    assert dag.default_args["retries"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries cannot be -1"),
        ({"retries": "3"}, "retries must be an integer"),
        ({"pool_slots": 0}, "pool_slots cannot be 0"),
        ({"retry_delay": "soon"}, "retry_delay must be a timedelta"),
        ({"execution_timeout": 0}, "execution_timeout must be positive"),
        ({"trigger_rule": "sometimes"}, "unknown trigger_rule 'sometimes'"),
        ({"weight_rule": "heaviest"}, "weight_rule must be one of"),
        ({"pool": "bad pool"}, "invalid pool name"),
    ],
)
def test_bad_task_settings_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        Echo(task_id="a", **kwargs)


def test_unknown_default_args_key_and_unknown_operator_argument() -> None:
    with pytest.raises(
        DagDefinitionError, match=r"unknown default_args key 'retires' \(did you mean 'retries'\?\)"
    ):
        DAG("d", default_args={"retires": 1})
    with DAG("e"), pytest.raises(DagDefinitionError, match="task 'a': unknown argument 'colour'"):
        Echo(task_id="a", colour="red")


def test_airflow_only_default_args_with_no_op_values_are_accepted() -> None:
    with DAG(
        "migrated",
        default_args={"owner": "data", "email_on_failure": False, "depends_on_past": False},
    ) as dag:
        a = Echo(task_id="a")
    assert a.settings.retries == 0
    assert dag.default_args["owner"] == "data"


def test_task_decorator_checks_its_arguments() -> None:
    with pytest.raises(DagDefinitionError, match="unknown argument 'retires'"):

        @task(retires=2)
        def f() -> None: ...

    @task
    def g(x: int) -> int:
        return x

    with DAG("d"):
        with pytest.raises(DagDefinitionError, match="missing argument 'x'"):
            g()
        with pytest.raises(DagDefinitionError, match="unexpected keyword argument 'y'"):
            g(1, y=2)
        with pytest.raises(DagDefinitionError, match="has no parameter 'y'"):
            g.expand(y=[1])
    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        g(1)


def test_context_parameters_need_not_be_passed() -> None:
    @task
    def uses_context(x: int, params: dict[str, Any], ti: Any) -> int:
        return x

    with DAG("d", params={"n": 1}) as dag:
        uses_context(1)
    assert dag.task_ids == ["uses_context"]


def test_duplicate_task_id_and_bad_ids() -> None:
    with DAG("d"):
        Echo(task_id="a")
        with pytest.raises(DuplicateTaskIdError, match="already has a task with id 'a'"):
            Echo(task_id="a")
    with pytest.raises(DagDefinitionError, match="invalid dag_id"):
        DAG("has space")
    with DAG("d2"), pytest.raises(DagDefinitionError, match="invalid task_id"):
        Echo(task_id="")


def test_cycles_are_reported_with_their_path() -> None:
    with DAG("d") as dag:
        a, b, c = Echo(task_id="a"), Echo(task_id="b"), Echo(task_id="c")
        a >> b >> c >> a
    with pytest.raises(CycleError, match="a -> b -> c -> a"):
        dag.validate()


def test_dependencies_across_dags_are_refused() -> None:
    with DAG("one"):
        a = Echo(task_id="a")
    with DAG("two"):
        b = Echo(task_id="b")
        with pytest.raises(DagDefinitionError, match="both must belong to one DAG"):
            a >> b


def test_mapping_definitions() -> None:
    with DAG("d") as dag:

        @task
        def items() -> list[int]:
            return [1, 2]

        @task
        def double(x: int, factor: int) -> int:
            return x * factor

        mapped = double.partial(factor=3).expand(x=items())
        classic = Echo.partial(task_id="echo", retries=2).expand(value=[1, 2, 3])
    node = dag.get_task("double")
    assert isinstance(node, MappedOperator)
    assert node.upstream_task_ids == {"items"}
    assert [s.upstream for s in node.map_sources()] == ["items"]
    assert isinstance(classic, MappedOperator)
    assert classic.settings.retries == 2
    assert [s.literal_length for s in classic.map_sources()] == [3]
    op = classic.materialize(2, ValuesLookup({}))
    assert isinstance(op, Echo)
    assert op.value == 3
    op2 = node.materialize(1, ValuesLookup({"items": [10, 20]}))
    assert op2.execute.__self__ is op2  # a real operator, detached from the DAG
    assert op2.dag is None
    assert mapped.operator is node


@pytest.mark.parametrize(
    ("expand", "message"),
    [
        ({"value": 3}, "needs a list, tuple, dict or a task's output, got int"),
        ({"retries": [1]}, "cannot expand over the task setting 'retries'"),
        ({}, "needs at least one argument"),
    ],
)
def test_bad_expand_arguments(expand: dict[str, Any], message: str) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=message):
        Echo.partial(task_id="e").expand(**expand)


def test_cross_product_order_matches_airflow() -> None:
    with DAG("d"):

        @task
        def pair(a: int, b: str) -> str:
            return f"{a}{b}"

        node = pair.expand(a=[1, 2], b=["x", "y", "z"]).operator
    combos = [node.materialize(i, ValuesLookup({})).op_kwargs for i in range(6)]  # type: ignore[attr-defined]
    assert [(c["a"], c["b"]) for c in combos] == [
        (1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z"),
    ]  # fmt: skip


def test_priority_weight_rules() -> None:
    with DAG("d") as dag:
        a = Echo(task_id="a", priority_weight=2)
        b = Echo(task_id="b")
        c = Echo(task_id="c", weight_rule="upstream")
        d = Echo(task_id="d", weight_rule="absolute", priority_weight=7)
        a >> b >> c
        a >> d
    assert dag.priority_weights() == {"a": 2 + 1 + 1 + 7, "b": 2, "c": 1 + 1 + 2, "d": 7}


def test_params_defaults_types_and_errors() -> None:
    with DAG(
        "d", params={"n": 3, "name": Param("x", choices=["x", "y"]), "req": Param(type=int)}
    ) as dag:
        pass
    assert dag.params.resolve({"req": 1}) == {"n": 3, "name": "x", "req": 1}
    assert dag.params.resolve({"req": "2", "n": "5"}, as_text=True)["n"] == 5
    with pytest.raises(ParamValidationError, match="'req' is required"):
        dag.params.resolve({})
    with pytest.raises(ParamValidationError, match="not one of"):
        dag.params.resolve({"req": 1, "name": "z"})
    with pytest.raises(ParamValidationError, match="unknown parameter 'm'"):
        dag.params.resolve({"req": 1, "m": 1})
    with pytest.raises(ParamValidationError, match="not a valid int"):
        dag.params.resolve({"req": "abc"}, as_text=True)


def test_trigger_rule_accepts_strings_and_enums() -> None:
    with DAG("d"):
        a = Echo(task_id="a", trigger_rule="one_failed")
        b = Echo(task_id="b", trigger_rule=TriggerRule.ALL_DONE)
    assert a.trigger_rule is TriggerRule.ONE_FAILED
    assert b.trigger_rule is TriggerRule.ALL_DONE


def test_params_in_airflows_json_schema_spelling() -> None:
    with DAG(
        "schema",
        params={
            "n": Param(5, type="integer", minimum=1, maximum=10),
            "mode": Param("fast", type="string", enum=["fast", "slow"]),
            "limit": Param(None, type=["null", "integer"]),
        },
    ) as dag:
        pass
    assert dag.params.resolve({"n": "7"}, as_text=True) == {"n": 7, "mode": "fast", "limit": None}
    with pytest.raises(ParamValidationError, match="greater than the maximum of 10"):
        dag.params.resolve({"n": 11})
    with pytest.raises(ParamValidationError, match="not one of"):
        dag.params.resolve({"mode": "medium"})
    assert dag.params.resolve({"limit": "3"}, as_text=True)["limit"] == 3
    with pytest.raises(ParamValidationError, match="unknown Param type 'int'"):
        Param(1, type="int")
    with pytest.raises(ParamValidationError, match="unknown JSON Schema keyword 'multipleof'"):
        Param(1, type="integer", multipleof=2)
