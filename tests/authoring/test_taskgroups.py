"""TaskGroup and @task_group: prefixed ids, nesting, wiring, default_args, errors."""

from __future__ import annotations

from typing import Any

import pytest

from airloop import (
    DAG,
    BaseOperator,
    Context,
    DagDefinitionError,
    TaskGroup,
    XComArg,
    task,
    task_group,
)
from airloop.exceptions import CycleError, DuplicateTaskIdError


class Echo(BaseOperator):
    def __init__(self, *, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def execute(self, context: Context) -> Any:
        return self.value


def ups(dag: DAG) -> dict[str, set[str]]:
    return {t: set(op.upstream_task_ids) for t, op in dag.task_dict.items()}


def test_nested_groups_prefix_task_ids_and_keep_the_tree_on_the_dag() -> None:
    with DAG("d") as dag:
        start = Echo(task_id="start")
        with TaskGroup("extract", tooltip="pull the data") as extract:
            Echo(task_id="a")
            with TaskGroup("inner") as inner:
                Echo(task_id="b")
        start >> extract
    assert dag.task_ids == ["start", "extract.a", "extract.inner.b"]
    assert extract.group_id == "extract"
    assert inner.group_id == "extract.inner"
    assert inner.parent_group is extract
    assert extract.child_id("x") == "extract.x"
    root = dag.task_group
    assert root.group_id is None
    assert list(root.children) == ["start", "extract"]
    assert list(extract.children) == ["extract.a", "extract.inner"]
    assert dag.task_group_dict == {"extract": extract, "extract.inner": inner}
    assert dag.get_task("extract.inner.b").task_group is inner
    assert dag.get_task("start").task_group is root
    assert extract.tooltip == "pull the data"
    # The tree as plain data, for a UI to draw.
    assert root.describe() == {
        "id": None,
        "tooltip": "",
        "display": {},
        "children": [
            {"task_id": "start"},
            {
                "id": "extract",
                "tooltip": "pull the data",
                "display": {},
                "children": [
                    {"task_id": "extract.a"},
                    {
                        "id": "extract.inner",
                        "tooltip": "",
                        "display": {},
                        "children": [{"task_id": "extract.inner.b"}],
                    },
                ],
            },
        ],
    }


def test_prefix_group_id_false_leaves_ids_alone_but_nested_group_ids_follow_airflow() -> None:
    with DAG("d") as dag:
        with TaskGroup("outer", prefix_group_id=False) as outer:
            Echo(task_id="a")
            with TaskGroup("inner") as inner:
                Echo(task_id="b")
        with TaskGroup("other") as other, TaskGroup("flat", prefix_group_id=False) as flat:
            Echo(task_id="c")
    assert dag.task_ids == ["a", "inner.b", "c"]
    assert outer.group_id == "outer"
    assert inner.group_id == "inner"  # the parent does not prefix
    assert flat.group_id == "other.flat"  # the group is prefixed, its tasks are not
    assert other.children["other.flat"] is flat


def test_group_to_group_connects_leaves_to_roots() -> None:
    with DAG("d") as dag:
        with TaskGroup("g1") as g1:
            a, b, c = Echo(task_id="a"), Echo(task_id="b"), Echo(task_id="c")
            a >> [b, c]
        with TaskGroup("g2") as g2:
            x, y, z = Echo(task_id="x"), Echo(task_id="y"), Echo(task_id="z")
            [x, y] >> z
        end = Echo(task_id="end")
        g1 >> g2 >> end
    assert [t.task_id for t in g1.roots] == ["g1.a"]
    assert [t.task_id for t in g1.leaves] == ["g1.b", "g1.c"]
    assert ups(dag) == {
        "g1.a": set(),
        "g1.b": {"g1.a"},
        "g1.c": {"g1.a"},
        "g2.x": {"g1.b", "g1.c"},
        "g2.y": {"g1.b", "g1.c"},
        "g2.z": {"g2.x", "g2.y"},
        "end": {"g2.z"},
    }


def test_task_to_group_lists_of_groups_and_reversed_shifts() -> None:
    with DAG("d") as dag:
        start = Echo(task_id="start")
        with TaskGroup("g1") as g1:
            Echo(task_id="a")
        with TaskGroup("g2") as g2:
            Echo(task_id="b")
        end = Echo(task_id="end")
        start >> [g1, g2]
        end << [g1, g2]
        g1.set_downstream(Echo(task_id="late"))
    assert ups(dag) == {
        "start": set(),
        "g1.a": {"start"},
        "g2.b": {"start"},
        "end": {"g1.a", "g2.b"},
        "late": {"g1.a"},
    }


def test_group_default_args_merge_over_the_dags() -> None:
    with DAG("d", default_args={"retries": 1, "pool": "p", "owner": "ops"}) as dag:
        Echo(task_id="top")
        with TaskGroup("g", default_args={"retries": 4, "owner": "team"}):
            Echo(task_id="a")
            Echo(task_id="b", retries=0)
            with TaskGroup("h", default_args={"priority_weight": 7}):
                Echo(task_id="c")
    top, a, b, c = (dag.get_task(t) for t in ("top", "g.a", "g.b", "g.h.c"))
    assert (top.retries, top.pool, top.owner) == (1, "p", "ops")
    assert (a.retries, a.pool, a.owner) == (4, "p", "team")
    assert b.retries == 0
    assert (c.retries, c.pool, c.settings.priority_weight) == (4, "p", 7)


def test_group_default_args_are_checked() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match=r"task group 'g'.*'retriez'"):
        TaskGroup("g", default_args={"retriez": 1})


def test_ui_colors_are_descriptive() -> None:
    with DAG("d"):
        g = TaskGroup("g", ui_color="#fff", ui_fgcolor="#000", group_display_name="G")
    assert g.display == {"ui_color": "#fff", "ui_fgcolor": "#000", "group_display_name": "G"}


def test_operator_task_group_argument_and_parent_group() -> None:
    with DAG("d") as dag:
        outer = TaskGroup("outer")
        inner = TaskGroup("inner", parent_group=outer)
        Echo(task_id="a", task_group=inner)
        Echo(task_id="b")

        @task(task_group=outer)
        def c() -> None:
            return None

        c()
    assert dag.task_ids == ["outer.inner.a", "b", "outer.c"]
    assert inner.group_id == "outer.inner"


def test_a_task_called_twice_in_a_group_gets_a_suffix_inside_the_group() -> None:
    with DAG("d") as dag:

        @task
        def one() -> int:
            return 1

        one()
        with TaskGroup("g"):
            one()
            one()
    assert dag.task_ids == ["one", "g.one", "g.one__1"]


def test_duplicate_ids_in_a_group_are_errors() -> None:
    with DAG("d"), TaskGroup("g"):
        Echo(task_id="a")
        with pytest.raises(DuplicateTaskIdError, match=r"'g\.a'"):
            Echo(task_id="a")
    with DAG("e"):
        TaskGroup("g")
        with pytest.raises(DuplicateTaskIdError, match=r"group_id 'g' .*already"):
            TaskGroup("g")
        Echo(task_id="t")
        with pytest.raises(DuplicateTaskIdError, match=r"'t'.*already.*task"):
            TaskGroup("t")
    with DAG("f"):
        TaskGroup("g", prefix_group_id=False)
        with pytest.raises(DuplicateTaskIdError, match=r"'g'.*task group"):
            Echo(task_id="g")


def test_add_suffix_on_collision() -> None:
    with DAG("d") as dag:
        first = TaskGroup("g", add_suffix_on_collision=True)
        second = TaskGroup("g", add_suffix_on_collision=True)
        third = TaskGroup("g", add_suffix_on_collision=True)
    assert (first.group_id, second.group_id, third.group_id) == ("g", "g__1", "g__2")
    assert list(dag.task_group_dict) == ["g", "g__1", "g__2"]


@pytest.mark.parametrize("bad", ["a.b", "", "with space", 3])
def test_bad_group_ids(bad: Any) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="invalid group_id"):
        TaskGroup(bad)


def test_a_group_needs_a_dag() -> None:
    with pytest.raises(DagDefinitionError, match=r"TaskGroup 'g'.*inside a DAG"):
        TaskGroup("g")


def test_unknown_group_argument() -> None:
    with DAG("d"), pytest.raises(TypeError):
        TaskGroup("g", retries=2)  # type: ignore[call-arg]


def test_cycles_through_groups_name_the_cycle() -> None:
    with DAG("d") as dag:
        with TaskGroup("g1") as g1:
            Echo(task_id="a")
        with TaskGroup("g2") as g2:
            Echo(task_id="b")
        g1 >> g2 >> g1
    with pytest.raises(CycleError, match=r"g1\.a -> g2\.b -> g1\.a|g2\.b -> g1\.a -> g2\.b"):
        dag.validate()


def test_an_empty_group_cannot_be_linked() -> None:
    with DAG("d"):
        a = Echo(task_id="a")
        g = TaskGroup("g")
        with pytest.raises(DagDefinitionError, match="task group 'g' has no tasks"):
            a >> g


# -- @task_group -------------------------------------------------------------------


def test_task_group_decorator_builds_a_group_and_returns_it() -> None:
    with DAG("d") as dag:

        @task
        def a() -> int:
            return 1

        @task_group
        def section() -> None:
            """Two steps."""
            a() >> a()

        start = Echo(task_id="start")
        result = section()
        start >> result >> Echo(task_id="end")
    assert isinstance(result, TaskGroup)
    assert result.group_id == "section"
    assert result.tooltip == "Two steps."
    assert ups(dag) == {
        "start": set(),
        "section.a": {"start"},
        "section.a__1": {"section.a"},
        "end": {"section.a__1"},
    }


def test_task_group_returning_a_task_passes_its_output_downstream() -> None:
    with DAG("d") as dag:

        @task
        def double(x: int) -> int:
            return x * 2

        @task
        def total(x: int) -> int:
            return x

        @task_group(group_id="math", default_args={"retries": 2})
        def math(x: int) -> XComArg:
            return double(double(x))

        first = math(1)
        second = math(first)  # called again: the group id gets a suffix
        total(second)
        math.override(group_id="g2")(3)
    assert isinstance(first, XComArg)
    assert dag.task_ids == [
        "math.double",
        "math.double__1",
        "math__1.double",
        "math__1.double__1",
        "total",
        "g2.double",
        "g2.double__1",
    ]
    assert ups(dag)["math__1.double"] == {"math.double__1"}
    assert ups(dag)["total"] == {"math__1.double__1"}
    assert dag.get_task("math.double").retries == 2


def test_task_group_chaining_by_calls() -> None:
    with DAG("d") as dag:

        @task_group
        def g1() -> None:
            Echo(task_id="a")

        @task_group
        def g2() -> None:
            Echo(task_id="b")

        g1() >> g2()
    assert ups(dag) == {"g1.a": set(), "g2.b": {"g1.a"}}


def test_nested_task_group_decorators() -> None:
    with DAG("d") as dag:

        @task_group
        def inner() -> None:
            Echo(task_id="leaf")

        @task_group
        def outer() -> None:
            inner()
            inner()

        outer()
    assert dag.task_ids == ["outer.inner.leaf", "outer.inner__1.leaf"]


def test_task_group_call_errors() -> None:
    @task_group
    def g(x: int) -> None:
        Echo(task_id="a")

    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        g(1)
    with DAG("d"), pytest.raises(DagDefinitionError, match=r"g\(\): missing a required argument"):
        g()
    # Mapped task groups: see test_mapped_task_groups.py.
    with pytest.raises(DagDefinitionError, match="unknown argument 'retries'"):
        task_group(retries=3)
