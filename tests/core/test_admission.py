"""Admission over every run: pools, each DAG's max_active_tasks, executor capacity and
priority across runs (ADR 0019). Pure: planners and explicit ``now``, no event loop."""

from __future__ import annotations

import pytest

from airloop.core.admission import Admission
from airloop.core.plan import PlanningError
from airloop.core.planner import RunPlanner
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import TaskState as S
from airloop.core.stimuli import Succeeded


def planner(admission: Admission, dag_id: str, *specs: TaskSpec, limit: int = 100) -> RunPlanner:
    return RunPlanner(
        specs, admission=admission, max_active_tasks=admission.dag_limit(dag_id, limit)
    )


def started(p: RunPlanner) -> list[str]:
    return [str(k) for k in p.take_admitted().to_start]


def test_a_freed_slot_goes_to_the_best_task_of_any_run() -> None:
    admission = Admission({"default_pool": 1})
    low = planner(admission, "low", TaskSpec("l1"), TaskSpec("l2"))
    high = planner(admission, "high", TaskSpec("h", priority_weight=10))
    low.start(0.0, admit=False)
    high.start(0.0, admit=False)
    admission.admit()
    assert (started(low), started(high)) == ([], ["h"])
    high.handle([Succeeded(TIKey("h"))], 0.0, admit=False)
    admission.admit()
    assert started(low) == ["l1"]


@pytest.mark.parametrize(("capacity", "first"), [(None, 5), (2, 2), (1, 1)])
def test_executor_capacity_bounds_what_is_started(capacity: int | None, first: int) -> None:
    admission = Admission({"default_pool": 100}, {"process": capacity})
    p = planner(admission, "d", *(TaskSpec(f"t{i}", executor="process") for i in range(5)))
    assert len(p.start(0.0).to_start) == first
    assert admission.executor_used("process") == first
    plan = p.handle([Succeeded(TIKey("t0"))], 0.0)
    assert len(plan.to_start) == (0 if capacity is None else 1)
    assert admission.executor_used("process") == min(first, 4)


def test_a_lowered_dag_limit_holds_for_old_and_new_runs() -> None:
    admission = Admission({"default_pool": 100})
    old = planner(admission, "d", *(TaskSpec(f"t{i}") for i in range(4)), limit=3)
    assert len(old.start(0.0).to_start) == 3
    new = planner(admission, "d", TaskSpec("t0"), limit=1)  # the file now says 1
    assert new.start(0.0).to_start == []
    assert old.handle([Succeeded(TIKey("t0"))], 0.0).to_start == []  # 2 still run
    old.handle([Succeeded(TIKey("t1"))], 0.0)
    plan = old.handle([Succeeded(TIKey("t2"))], 0.0)
    assert plan.to_start == [TIKey("t3")]
    assert new.handle([], 0.0).to_start == []  # t3 holds the one slot


def test_validate_names_a_counter_that_drifted() -> None:
    p = planner(Admission({"default_pool": 1}), "d", TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    p.start(0.0)
    p.validate()
    p._active += 1  # a bug's effect
    with pytest.raises(PlanningError, match=r"active: kept 2, is 1"):
        p.validate()


def test_a_finished_run_leaves_the_admission() -> None:
    admission = Admission({"default_pool": 1})
    p = planner(admission, "d", TaskSpec("a"))
    p.start(0.0)
    p.handle([Succeeded(TIKey("a"))], 0.0)
    assert p.finished
    assert p.state_of(TIKey("a")) is S.SUCCESS
    assert admission._planners == {}
