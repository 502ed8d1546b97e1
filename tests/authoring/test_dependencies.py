"""chain, chain_linear, cross_downstream, set_upstream/set_downstream and Label."""

from __future__ import annotations

from typing import Any

import pytest

from airloop import (
    DAG,
    BaseOperator,
    Context,
    DagDefinitionError,
    Label,
    TaskGroup,
    TriggerRule,
    chain,
    chain_linear,
    cross_downstream,
    task,
)


class Echo(BaseOperator):
    def execute(self, context: Context) -> Any:
        return None


def edges(dag: DAG) -> set[str]:
    return {f"{u}>{d}" for d, op in dag.task_dict.items() for u in op.upstream_task_ids}


def make(dag: DAG, names: str) -> list[Echo]:
    return [Echo(task_id=n, dag=dag) for n in names]


CHAIN_CASES: list[tuple[str, Any, set[str]]] = [
    ("singles", lambda t: chain(t["a"], t["b"], t["c"]), {"a>b", "b>c"}),
    (
        "lists of equal length pair up",
        lambda t: chain(t["a"], [t["b"], t["c"]], [t["d"], t["e"]], t["f"]),
        {"a>b", "a>c", "b>d", "c>e", "d>f", "e>f"},
    ),
    ("one list", lambda t: chain([t["a"], t["b"]]), set()),
    ("a single task", lambda t: chain(t["a"]), set()),
    ("nothing", lambda t: chain(), set()),
    (
        "XComArgs and tuples",
        lambda t: chain(t["a"].output, (t["b"], t["c"]), t["d"].output),
        {"a>b", "a>c", "b>d", "c>d"},
    ),
    (
        "labels",
        lambda t: chain(t["a"], Label("yes"), t["b"]),
        {"a>b"},
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "expected"), CHAIN_CASES, ids=[c[0] for c in CHAIN_CASES]
)
def test_chain(name: str, build: Any, expected: set[str]) -> None:
    with DAG("d") as dag:
        tasks = {t.task_id: t for t in make(dag, "abcdef")}
        build(tasks)
    assert edges(dag) == expected


CHAIN_LINEAR_CASES: list[tuple[str, Any, set[str]]] = [
    (
        "every element of a list to every element of the next",
        lambda t: chain_linear(t["a"], [t["b"], t["c"]], [t["d"], t["e"]], t["f"]),
        {"a>b", "a>c", "b>d", "b>e", "c>d", "c>e", "d>f", "e>f"},
    ),
    (
        "lists of different lengths",
        lambda t: chain_linear([t["a"], t["b"]], [t["c"], t["d"], t["e"]]),
        {"a>c", "a>d", "a>e", "b>c", "b>d", "b>e"},
    ),
    ("singles", lambda t: chain_linear(t["a"], t["b"]), {"a>b"}),
]


@pytest.mark.parametrize(
    ("name", "build", "expected"), CHAIN_LINEAR_CASES, ids=[c[0] for c in CHAIN_LINEAR_CASES]
)
def test_chain_linear(name: str, build: Any, expected: set[str]) -> None:
    with DAG("d") as dag:
        tasks = {t.task_id: t for t in make(dag, "abcdef")}
        build(tasks)
    assert edges(dag) == expected


def test_cross_downstream() -> None:
    with DAG("d") as dag:
        a, b, c, d, e = make(dag, "abcde")
        cross_downstream([a, b], [c, d, e])
        cross_downstream([c.output], (e,))
    assert edges(dag) == {"a>c", "a>d", "a>e", "b>c", "b>d", "b>e", "c>e"}


def test_chain_with_groups() -> None:
    with DAG("d") as dag:
        start = Echo(task_id="start")
        with TaskGroup("g1") as g1:
            Echo(task_id="a") >> Echo(task_id="b")
        with TaskGroup("g2") as g2:
            Echo(task_id="c")
        end = Echo(task_id="end")
        chain(start, g1, g2, end)
        chain_linear(start, [g1, g2], end)
    assert edges(dag) == {
        "start>g1.a",
        "g1.a>g1.b",
        "g1.b>g2.c",
        "g2.c>end",
        "start>g2.c",
        "g1.b>end",
    }


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda t: chain(t["a"], [t["b"], t["c"]], [t["d"]]),
            r"chain\(\): lists of different lengths \(2 and 1\)",
        ),
        (lambda t: chain(t["a"], 3), r"chain\(\): cannot set a dependency on 3"),
        (lambda t: chain([t["a"]], "b"), r"chain\(\): cannot set a dependency on 'b'"),
        (lambda t: chain_linear(t["a"]), r"chain_linear\(\) needs at least 2"),
        (
            lambda t: chain_linear([t["a"], t["b"]]),
            r"chain_linear\(\) needs at least 2",
        ),
        (
            lambda t: chain_linear(t["a"], Label("x"), t["b"]),
            r"chain_linear\(\): labels are not supported",
        ),
        (lambda t: cross_downstream(t["a"], [t["b"]]), r"cross_downstream\(\).*a list"),
        (lambda t: t["a"] >> 5, "cannot set a dependency on 5: not a task"),
    ],
)
def test_dependency_errors(build: Any, message: str) -> None:
    with DAG("d") as dag:
        tasks = {t.task_id: t for t in make(dag, "abcd")}
        with pytest.raises(DagDefinitionError, match=message):
            build(tasks)


def test_set_upstream_and_downstream_with_lists() -> None:
    with DAG("d") as dag:
        a, b, c, d = make(dag, "abcd")
        a.set_downstream([b, c])
        d.set_upstream([b, c])
        with TaskGroup("g") as g:
            Echo(task_id="x")
        g.set_upstream(d)
    assert edges(dag) == {"a>b", "a>c", "b>d", "c>d", "d>g.x"}


def test_labels_are_stored_as_edge_info() -> None:
    with DAG("d") as dag:
        a, b, c, d, e = make(dag, "abcde")
        a >> Label("left") >> [b, c]
        [b, c] >> Label("join") >> d
        e << Label("back") << d
        a.set_downstream(e, edge_modifier=Label("direct"))
        with TaskGroup("g") as g:
            Echo(task_id="x") >> Echo(task_id="y")
        e >> Label("into group") >> g >> Label("out") >> Echo(task_id="z")
    assert edges(dag) == {
        "a>b",
        "a>c",
        "b>d",
        "c>d",
        "d>e",
        "a>e",
        "e>g.x",
        "g.x>g.y",
        "g.y>z",
    }
    assert dag.get_edge_info("a", "b") == {"label": "left"}
    assert dag.get_edge_info("c", "d") == {"label": "join"}
    assert dag.get_edge_info("d", "e") == {"label": "back"}
    assert dag.get_edge_info("a", "e") == {"label": "direct"}
    assert dag.get_edge_info("e", "g.x") == {"label": "into group"}
    assert dag.get_edge_info("g.y", "z") == {"label": "out"}
    assert dag.get_edge_info("g.x", "g.y") == {}
    assert dag.edge_info["a"] == {
        "b": {"label": "left"},
        "c": {"label": "left"},
        "e": {"label": "direct"},
    }


def test_label_needs_text() -> None:
    with pytest.raises(DagDefinitionError, match="Label needs a non-empty string"):
        Label("")


def test_trigger_rule_is_exported_and_usable() -> None:
    with DAG("d") as dag:

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def t() -> None:
            return None

        t()
    assert dag.get_task("t").trigger_rule is TriggerRule.ALL_DONE


def test_xcom_args_take_set_upstream_and_set_downstream() -> None:
    with DAG("d") as dag:

        @task
        def one() -> int:
            return 1

        a, b, c = one(), one(), one()
        a.set_downstream(b)
        c.set_upstream([a, b], edge_modifier=Label("both"))
    assert edges(dag) == {"one>one__1", "one>one__2", "one__1>one__2"}
    assert dag.get_edge_info("one__1", "one__2") == {"label": "both"}
