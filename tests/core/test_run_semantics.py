"""Run semantics across runs, in the planner: the depends_on_past gate (held at
``none`` until ``PastGateMet``) and per-task limits (max_active_tis_per_dag over the
DAG's runs, max_active_tis_per_dagrun within a run). Pure: explicit ``now``."""

from __future__ import annotations

import pytest

from airloop.core.admission import Admission
from airloop.core.plan import PlanningError, StoredTI
from airloop.core.planner import RunPlanner
from airloop.core.specs import MapSource, TaskSpec, TIKey
from airloop.core.states import DagRunState
from airloop.core.states import TaskState as S
from airloop.core.stimuli import PastGateMet, Started, StopRequested, Succeeded


def planner(admission: Admission, *specs: TaskSpec, dag_id: str = "d") -> RunPlanner:
    limits = {
        s.task_id: admission.task_limit(dag_id, s.task_id, s.max_active_tis_per_dag)
        for s in specs
        if s.max_active_tis_per_dag is not None
    }
    return RunPlanner(
        specs,
        admission=admission,
        max_active_tasks=admission.dag_limit(dag_id, 100),
        task_limits=limits,
    )


def started(p: RunPlanner) -> list[str]:
    return [str(k) for k in p.take_admitted().to_start]


# -- depends_on_past --------------------------------------------------------------------


def test_a_gated_task_waits_at_none_until_its_gate_is_met() -> None:
    p = planner(
        Admission({"default_pool": 10}), TaskSpec("a", depends_on_past=True), TaskSpec("b", ("a",))
    )
    plan = p.start(0.0)
    assert plan.gated == [TIKey("a")]
    assert plan.to_start == []
    assert p.state_of(TIKey("a")) is S.NONE
    assert p.gated == {TIKey("a")}
    plan = p.handle([PastGateMet(TIKey("a"))], 1.0)
    assert plan.to_start == [TIKey("a")]
    assert p.gated == frozenset()
    p.handle([Started(TIKey("a")), Succeeded(TIKey("a"))], 2.0)
    assert p.state_of(TIKey("b")) is S.QUEUED  # b has no gate


def test_gates_of_a_mapped_task_are_per_map_index() -> None:
    p = planner(
        Admission({"default_pool": 10}),
        TaskSpec("m", map_sources=(MapSource("x", literal_length=3),), depends_on_past=True),
    )
    plan = p.start(0.0)
    assert sorted(map(str, plan.gated)) == ["m[0]", "m[1]", "m[2]"]
    plan = p.handle([PastGateMet(TIKey("m", 1))], 1.0)
    assert plan.to_start == [TIKey("m", 1)]
    assert p.state_of(TIKey("m", 0)) is S.NONE


def test_a_gate_met_before_it_was_asked_for_needs_no_second_answer() -> None:
    p = planner(
        Admission({"default_pool": 10}), TaskSpec("u"), TaskSpec("a", ("u",), depends_on_past=True)
    )
    p.start(0.0)
    p.handle([PastGateMet(TIKey("a"))], 0.5)  # answered early: remembered
    plan = p.handle([Started(TIKey("u")), Succeeded(TIKey("u"))], 1.0)
    assert plan.gated == []
    assert plan.to_start == [TIKey("a")]


def test_a_restored_run_asks_again_about_its_held_instances() -> None:
    p = planner(
        Admission({"default_pool": 10}), TaskSpec("u"), TaskSpec("a", ("u",), depends_on_past=True)
    )
    stored = [StoredTI(TIKey("u"), S.SUCCESS, 1), StoredTI(TIKey("a"), S.NONE, 0)]
    plan = p.restore(stored, {}, 0.0)
    assert plan.gated == [TIKey("a")]
    assert p.handle([PastGateMet(TIKey("a"))], 1.0).to_start == [TIKey("a")]


def test_a_stopped_run_leaves_held_instances_unreached() -> None:
    p = planner(Admission({"default_pool": 10}), TaskSpec("a", depends_on_past=True))
    p.start(0.0)
    plan = p.handle([StopRequested("SIGTERM")], 1.0)
    assert plan.run_state is DagRunState.FAILED
    plan = p.handle([PastGateMet(TIKey("a"))], 2.0)
    assert plan.to_start == []
    assert p.state_of(TIKey("a")) is S.NONE


# -- per-task limits ------------------------------------------------------------------------


def test_max_active_tis_per_dagrun_caps_a_mapped_task_without_blocking_others() -> None:
    p = planner(
        Admission({"default_pool": 10}),
        TaskSpec(
            "m",
            map_sources=(MapSource("x", literal_length=5),),
            max_active_tis_per_dagrun=2,
            priority_weight=10,
        ),
        TaskSpec("other"),
    )
    plan = p.start(0.0)
    assert sorted(map(str, plan.to_start)) == ["m[0]", "m[1]", "other"]
    plan = p.handle([Started(TIKey("m", 0)), Succeeded(TIKey("m", 0))], 1.0)
    assert plan.to_start == [TIKey("m", 2)]


def test_max_active_tis_per_dag_is_shared_by_the_dags_runs() -> None:
    admission = Admission({"default_pool": 10})
    spec = TaskSpec("t", max_active_tis_per_dag=1)
    first, second = planner(admission, spec), planner(admission, spec)
    other_dag = planner(admission, spec, dag_id="other")
    for p in (first, second, other_dag):
        p.start(0.0, admit=False)
    admission.admit()
    assert (started(first), started(second), started(other_dag)) == (["t"], [], ["t"])
    first.handle([Started(TIKey("t")), Succeeded(TIKey("t"))], 1.0, admit=False)
    admission.admit()
    assert started(second) == ["t"]


def test_a_per_task_limit_below_one_is_rejected() -> None:
    with pytest.raises(PlanningError, match="max_active_tis_per_dagrun must be >= 1"):
        planner(Admission({"default_pool": 1}), TaskSpec("t", max_active_tis_per_dagrun=0))
