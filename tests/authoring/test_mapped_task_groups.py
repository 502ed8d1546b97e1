"""Mapped task groups (ADR 0029): ``@task_group`` with ``.expand()``,
``.partial().expand()`` and ``.expand_kwargs()``, what their tasks bind to, the
planner specs they give, and the definition errors (nested mapping among them)."""

from __future__ import annotations

from typing import Any

import pytest

from airloop import DAG, BaseOperator, Context, DagDefinitionError, TaskGroup, task, task_group
from airloop.authoring.expand_input import MappedArgument, PendingOperator
from airloop.authoring.mapped import MappedOperator
from airloop.authoring.taskgroup import MappedTaskGroup
from airloop.authoring.xcom_arg import ValuesLookup, XComArg
from airloop.core.specs import MapSource
from airloop.engine.specs import build_specs
from airloop.exceptions import FailTask


class Echo(BaseOperator):
    def __init__(self, *, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def execute(self, context: Context) -> Any:
        return self.value


@task
def nums() -> list[int]:
    return [1, 2, 3]


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def total(values: list[int]) -> int:
    return sum(values)


def kwargs_of(dag: DAG, task_id: str, map_index: int, values: dict[str, Any]) -> Any:
    op = dag.task_dict[task_id].materialize(map_index, ValuesLookup(values))
    return op.op_kwargs  # type: ignore[attr-defined]


def test_every_task_made_inside_maps_over_the_groups_literal_list() -> None:
    with DAG("d") as dag:

        @task_group
        def grp(x: int, y: int) -> XComArg:
            d = double(x)
            return add(d, y)

        out = grp.partial(y=10).expand(x=[1, 2, 3])
        total(out)
    assert dag.task_ids == ["grp.double", "grp.add", "total"]
    group = dag.task_group_dict["grp"]
    assert isinstance(group, MappedTaskGroup)
    for task_id in ("grp.double", "grp.add"):
        node = dag.task_dict[task_id]
        assert isinstance(node, MappedOperator)
        assert node.group is group
        assert node.map_sources() == (MapSource("x", literal_length=3),)
    # Element i of x for instance i; a same-group output is the same-index one.
    assert kwargs_of(dag, "grp.double", 2, {}) == {"x": 3}
    assert kwargs_of(dag, "grp.add", 1, {"grp.double": 4}) == {"x": 4, "y": 10}
    specs = {s.task_id: s for s in build_specs(dag)}
    assert specs["grp.add"].per_index_upstream == ("grp.double",)
    assert specs["grp.double"].per_index_upstream == ()
    # After the group: an ordinary task over all instances' outputs.
    assert specs["total"].upstream == ("grp.add",)
    assert specs["total"].per_index_upstream == ()
    assert not specs["total"].is_mapped


def test_an_upstream_output_as_source_and_edges_written_with_shift() -> None:
    with DAG("d") as dag:

        @task_group
        def grp(x: int) -> None:
            a = double(x)
            b = double.override(task_id="b")(x)
            with TaskGroup("inner"):
                c = add(x, 1)
            a >> b >> c

        n = nums()
        grp.expand(x=n)
    node = dag.task_dict["grp.inner.add"]
    assert isinstance(node, MappedOperator)
    assert node.map_sources() == (MapSource("x", upstream="nums"),)
    assert node.upstream_task_ids == {"nums", "grp.b"}
    specs = {s.task_id: s for s in build_specs(dag)}
    assert specs["grp.b"].per_index_upstream == ("grp.double",)
    assert specs["grp.inner.add"].per_index_upstream == ("grp.b",)
    assert kwargs_of(dag, "grp.inner.add", 1, {"nums": [5, 6, 7]}) == {"x": 6, "y": 1}
    # A group whose function returns nothing is returned itself.
    assert isinstance(dag.task_group_dict["grp"], MappedTaskGroup)
    described = dag.task_group_dict["grp"].describe()
    assert described["mapped_over"] == ["x"]
    assert described["children"][0] == {"task_id": "grp.double"}


def test_expand_kwargs_subscripts_defaults_and_outside_outputs() -> None:
    with DAG("d") as dag:
        start = nums()

        @task_group
        def grp(pair: dict[str, int], scale: int = 3) -> XComArg:
            return add(pair["a"], scale)

        @task
        def use(values: list[int], first: int) -> int:
            return first

        out = grp.expand_kwargs([{"pair": {"a": 1}}, {"pair": {"a": 2}, "scale": 5}])
        use(start, out)  # positional: a plain task, not in the group
        with TaskGroup("other"):
            grp.override(group_id="outer").expand(pair=[{"a": 7}], scale=[0])
    assert kwargs_of(dag, "grp.add", 0, {}) == {"x": 1, "y": 3}
    assert kwargs_of(dag, "grp.add", 1, {}) == {"x": 2, "y": 5}
    assert kwargs_of(dag, "other.outer.add", 0, {}) == {"x": 7, "y": 0}
    assert dag.task_dict["use"].upstream_task_ids == {"nums", "grp.add"}


def test_expand_kwargs_over_an_output_is_checked_when_bound() -> None:
    with DAG("d") as dag:

        @task_group
        def grp(x: int) -> None:
            double(x)

        grp.expand_kwargs(nums())
    assert kwargs_of(dag, "grp.double", 1, {"nums": [{"x": 1}, {"x": 2}]}) == {"x": 2}
    with pytest.raises(FailTask, match=r"map index 0: the group's expand_kwargs\(\) gave 'z'"):
        kwargs_of(dag, "grp.double", 0, {"nums": [{"z": 1}]})
    with pytest.raises(FailTask, match=r"map index 0: the group's expand_kwargs\(\) needs a dict"):
        kwargs_of(dag, "grp.double", 0, {"nums": [3]})
    with pytest.raises(FailTask, match=r"the group's argument 'x' is missing"):
        kwargs_of(dag, "grp.double", 0, {"nums": [{}]})


def test_zip_and_map_sources_bind_the_same_way_as_for_tasks() -> None:
    with DAG("d") as dag:
        a, b = nums(), nums.override(task_id="more")()

        @task_group
        def grp(pair: tuple[int, int]) -> None:
            add(pair[0], pair[1])

        @task_group
        def squared(x: int) -> None:
            double(x)

        grp.expand(pair=a.zip(b))
        squared.expand(x=a.map(lambda v: v * v))
    lookup = {"nums": [1, 2], "more": [10, 20]}
    assert kwargs_of(dag, "grp.add", 1, lookup) == {"x": 2, "y": 20}
    pending = dag.task_dict["squared.double"].materialize(1, ValuesLookup(lookup))
    assert isinstance(pending, PendingOperator)
    assert pending.finish().op_kwargs == {"x": 4}  # type: ignore[attr-defined]


def test_mapped_argument_is_not_known_at_definition() -> None:
    seen: list[MappedArgument] = []
    with DAG("d"):

        @task_group
        def grp(x: int) -> None:
            assert isinstance(x, MappedArgument)
            seen.append(x)
            with pytest.raises(TypeError, match="not known while the DAG is defined"):
                list(x)  # type: ignore[call-overload]
            with pytest.raises(TypeError, match="no truth value"):
                bool(x)
            double(x)

        grp.expand(x=[1])
    assert repr(seen[0]["k"][0]) == "MappedArgument('grp', 'x')['k'][0]"


def test_nested_mapping_is_rejected() -> None:
    with DAG("d"):

        @task_group
        def expands_inside(x: int) -> None:
            double.expand(x=[1, 2])

        with pytest.raises(DagDefinitionError, match="nested mapping"):
            expands_inside.expand(x=[1])

        @task_group
        def inner(x: int) -> None:
            double(x)

        @task_group
        def outer(x: int) -> None:
            inner.expand(x=[1, 2])

        with pytest.raises(
            DagDefinitionError, match=r"inside the mapped task group 'outer'.*nested"
        ):
            outer.expand(x=[1])

        @task_group
        def over_argument(x: list[int]) -> None:
            double.expand(x=x)

        with pytest.raises(DagDefinitionError, match="nested mapping"):
            over_argument.expand(x=[[1]])

        @task_group
        def classic_partial(x: int) -> None:
            Echo.partial(task_id="e", value=x).expand(retries=[1])

        with pytest.raises(DagDefinitionError, match=r"task 'e'.*'classic_partial' is nested"):
            classic_partial.expand(x=[1])


def test_definition_errors_name_the_group_and_what_is_wrong() -> None:
    @task_group
    def grp(x: int, y: int = 0) -> None:
        double(x)

    @task_group
    def empty(x: int) -> None:
        return None

    @task_group
    def leaks(x: int) -> MappedArgument:
        double(x)
        return x  # type: ignore[return-value]

    @task.branch
    def pick(x: int) -> str:
        return "a"

    @task_group
    def branches(x: int) -> None:
        pick(x)

    @task
    def star(*xs: int) -> int:
        return sum(xs)

    @task_group
    def positional(x: int) -> None:
        star(x)

    cases: list[tuple[Any, str]] = [
        (lambda: grp.expand(), r"expand\(\) needs at least one argument"),
        (lambda: grp.expand(z=[1]), "the function has no parameter 'z'"),
        (lambda: grp.partial(x=1).expand(x=[1]), "'x' is given to both partial"),
        (lambda: grp.expand(x=5), r"expand\(x=...\) needs a list or tuple or dict"),
        (lambda: grp.expand(x=nums()["a"]), "subscripted output"),
        (lambda: grp.expand(y=[1]), "missing a required argument: 'x'"),
        (lambda: grp.expand_kwargs({"x": 1}), "needs a list or tuple"),
        (lambda: grp.expand_kwargs([1]), "map index 0: expand_kwargs.. needs a dict"),
        (lambda: grp.expand_kwargs([{"q": 1}]), "gave 'q', not a parameter"),
        (lambda: grp.expand_kwargs([{"x": nums()}]), "not task outputs inside the list"),
        (lambda: empty.expand(x=[1]), "made no tasks"),
        (lambda: double(leaks.expand(x=[1])), "only tasks made inside that group"),
        (lambda: branches.expand(x=[1]), "BranchPythonOperator|cannot be made inside"),
        (lambda: positional.expand(x=[1]), r"pass arguments by name \(\*xs"),
    ]
    for make, message in cases:
        with DAG("d"), pytest.raises(DagDefinitionError, match=message):
            make()


def test_a_group_argument_from_another_group_is_rejected() -> None:
    kept: list[MappedArgument] = []
    with DAG("d"):

        @task_group
        def first(x: int) -> None:
            kept.append(x)
            double(x)

        @task_group
        def second(x: int) -> None:
            add(x, kept[0])

        first.expand(x=[1])
        with pytest.raises(DagDefinitionError, match="belongs to another mapped task group"):
            second.expand(x=[2])


def test_setup_and_teardown_tasks_inside_a_mapped_group_are_rejected() -> None:
    from airloop import setup, teardown

    @setup
    def create(x: int) -> int:
        return x

    @teardown
    def delete(x: int) -> None:
        return None

    @task_group
    def with_setup(x: int) -> None:
        create(x)

    @task_group
    def with_teardown(x: int) -> None:
        delete(x)

    @task_group
    def marked(x: int) -> None:
        double(x).as_setup()

    for group, role in ((with_setup, "setup"), (with_teardown, "teardown"), (marked, "setup")):
        with DAG("d"), pytest.raises(DagDefinitionError, match=f"{role} tasks inside the mapped"):
            group.expand(x=[1])


def test_same_group_outputs_subscripted_and_nested_bind_per_index() -> None:
    with DAG("d") as dag:

        @task(multiple_outputs=True)
        def parts(x: int) -> Any:
            return {"left": x, "right": -x}

        @task
        def show(values: list[Any], text: str) -> str:
            return text

        @task_group
        def grp(x: int) -> None:
            p = parts(x)
            show([p["left"], {"r": p["right"]}, x], "at {{ ti.map_index }}")

        grp.expand(x=[1, 2])
    node = dag.task_dict["grp.parts"]
    assert node.settings.multiple_outputs
    lookup = ValuesLookup({"grp.parts": {"left": 2, "right": -2}})
    op = dag.task_dict["grp.show"].materialize(1, lookup)
    assert op.op_kwargs == {  # type: ignore[attr-defined]
        "values": [2, {"r": -2}, 2],
        "text": "at {{ ti.map_index }}",
    }
    assert op.argument_templates is not None


def test_classic_operators_made_inside_are_mapped_with_the_group() -> None:
    from airloop.authoring.branch import BranchPythonOperator

    with DAG("d") as dag:
        start = Echo(task_id="start", value=[5, 6])

        @task_group
        def grp(x: dict[str, int]) -> Any:
            first = Echo(task_id="first", value=x["v"])
            second = Echo(task_id="second", value=[first.output, x])
            return first >> second

        after = total(grp.expand(x=[{"v": 1}, {"v": 2}]).output).operator
        plain = Echo(task_id="plain")
        start >> plain
    first = dag.task_dict["grp.first"]
    assert isinstance(first, MappedOperator)
    assert first.group is dag.task_group_dict["grp"]
    assert isinstance(plain, Echo)
    lookup = ValuesLookup({"grp.first": 2})
    op = dag.task_dict["grp.second"].materialize(1, lookup)
    assert isinstance(op, Echo)
    assert op.value == [2, {"v": 2}]
    specs = {s.task_id: s for s in build_specs(dag)}
    assert specs["grp.second"].per_index_upstream == ("grp.first",)
    assert after.upstream_task_ids == {"grp.second"}

    @task_group
    def branches(x: int) -> None:
        BranchPythonOperator(task_id="b", python_callable=lambda: "x")

    with DAG("d"), pytest.raises(DagDefinitionError, match="BranchPythonOperator cannot be made"):
        branches.expand(x=[1])


def test_what_bind_returns_crosses_to_a_worker_intact() -> None:
    import pickle

    with DAG("d") as dag:

        @task_group
        def grp(x: int, y: int = 7) -> None:
            add(x, y)

        grp.expand_kwargs(nums().map(lambda d: d))
    pending = dag.task_dict["grp.add"].materialize(0, ValuesLookup({"nums": [{"x": 1}]}))
    assert isinstance(pending, PendingOperator)
    # The process and Dask executors pickle the bound values; a Slot keeps "no default".
    bound = pickle.loads(pickle.dumps(pending.bound))
    again = PendingOperator(node=pending.node, bound=bound, is_async=False)
    assert again.finish().op_kwargs == {"x": 1, "y": 7}  # type: ignore[attr-defined]
    missing = PendingOperator(
        node=pending.node,
        bound=pickle.loads(
            pickle.dumps(dag.task_dict["grp.add"].bind(0, ValuesLookup({"nums": [{}]})))
        ),
        is_async=False,
    )
    with pytest.raises(FailTask, match="the group's argument 'x' is missing"):
        missing.finish()


def test_several_expand_arguments_give_the_cross_product() -> None:
    with DAG("d") as dag:

        @task_group
        def grp(a: int, b: str) -> None:
            add(a, b)

        grp.expand(a=[1, 2], b=["x", "y", "z"])
    node = dag.task_dict["grp.add"]
    assert node.map_sources() == (  # type: ignore[attr-defined]
        MapSource("a", literal_length=2),
        MapSource("b", literal_length=3),
    )
    combos = [kwargs_of(dag, "grp.add", i, {}) for i in range(6)]
    assert [(c["x"], c["y"]) for c in combos] == [
        (1, "x"),
        (1, "y"),
        (1, "z"),
        (2, "x"),
        (2, "y"),
        (2, "z"),
    ]
