"""RunPlanner.restore: carrying on from the states the store recorded before a crash."""

from __future__ import annotations

from airloop.core.plan import StoredTI
from airloop.core.planner import RunPlanner
from airloop.core.pools import PoolLedger
from airloop.core.retry import RetryPolicy
from airloop.core.specs import MapSource, TaskSpec, TIKey
from airloop.core.states import DagRunState
from airloop.core.states import TaskState as S
from airloop.core.stimuli import Succeeded


def planner(specs: list[TaskSpec]) -> RunPlanner:
    return RunPlanner(specs, pools=PoolLedger({"default_pool": 100}), max_active_tasks=100)


def k(task: str, index: int = -1) -> TIKey:
    return TIKey(task, index)


def test_resumable_queued_and_running_instances_start_again_under_the_same_try() -> None:
    p = planner([TaskSpec("q"), TaskSpec("r"), TaskSpec("after", upstream=("q", "r"))])
    plan = p.restore(
        [
            StoredTI(k("q"), S.QUEUED, 1, resumable=True),
            StoredTI(k("r"), S.RUNNING, 2, resumable=True),
            StoredTI(k("after"), S.NONE, 0),
        ],
        {},
        now=10.0,
    )
    assert plan.to_start == [k("q"), k("r")]
    assert p.try_number(k("q")) == 1
    assert p.try_number(k("r")) == 2
    assert [(c.key.task_id, c.old, c.new) for c in plan.changes] == [
        ("q", S.QUEUED, S.SCHEDULED),
        ("r", S.RUNNING, S.SCHEDULED),
        ("q", S.SCHEDULED, S.QUEUED),
        ("r", S.SCHEDULED, S.QUEUED),
    ]
    assert p.active == 2


def test_a_queued_try_that_cannot_resume_is_never_started_again_under_its_number() -> None:
    """It was handed to an executor: it may have started. Lost, it is retried as a new
    try (or fails without retries), so no try number starts twice (ADR 0041)."""
    p = planner([TaskSpec("q", retry=RetryPolicy(retries=1, delay=0.0)), TaskSpec("once")])
    plan = p.restore(
        [StoredTI(k("q"), S.QUEUED, 1), StoredTI(k("once"), S.QUEUED, 1)], {}, now=10.0
    )
    assert p.state_of(k("once")) is S.FAILED
    assert plan.to_start == [k("q")]
    assert p.try_number(k("q")) == 2


def test_a_lost_running_instance_fails_and_retries_under_its_policy() -> None:
    p = planner(
        [
            TaskSpec("retried", retry=RetryPolicy(retries=1, delay=5.0)),
            TaskSpec("final"),
        ]
    )
    plan = p.restore(
        [StoredTI(k("retried"), S.RUNNING, 1), StoredTI(k("final"), S.RUNNING, 1)], {}, now=100.0
    )
    assert p.state_of(k("retried")) is S.UP_FOR_RETRY
    assert p.state_of(k("final")) is S.FAILED
    reasons = {c.key.task_id: c.reason for c in plan.changes if c.new in (S.FAILED, S.UP_FOR_RETRY)}
    assert reasons == {
        "retried": "scheduler lost while running",
        "final": "scheduler lost while running",
    }
    assert plan.wake_at == 105.0
    assert p.active == 0
    plan = p.tick(105.0)
    assert plan.to_start == [k("retried")]
    assert p.try_number(k("retried")) == 2


def test_finished_work_stays_finished_and_downstream_goes_on() -> None:
    p = planner(
        [
            TaskSpec("a"),
            TaskSpec("m", upstream=("a",), map_sources=(MapSource("x", upstream="a"),)),
            TaskSpec("z", upstream=("m",)),
        ]
    )
    plan = p.restore(
        [
            StoredTI(k("a"), S.SUCCESS, 1),
            StoredTI(k("m", 0), S.SUCCESS, 1),
            StoredTI(k("m", 1), S.RUNNING, 1, resumable=True),
            StoredTI(k("z"), S.NONE, 0),
        ],
        {"a": 2},
        now=0.0,
    )
    assert plan.to_start == [k("m", 1)]
    assert p.keys("m") == [k("m", 0), k("m", 1)]
    plan = p.handle([Succeeded(k("m", 1))], 1.0)
    assert plan.to_start == [k("z")]


def test_a_run_that_was_already_complete_is_finished_at_once() -> None:
    p = planner([TaskSpec("a"), TaskSpec("b", upstream=("a",))])
    plan = p.restore([StoredTI(k("a"), S.SUCCESS, 1), StoredTI(k("b"), S.FAILED, 2)], {}, 0.0)
    assert plan.run_state is DagRunState.FAILED
    assert plan.to_start == []


def test_retry_times_are_kept() -> None:
    p = planner([TaskSpec("a", retry=RetryPolicy(retries=3, delay=1.0))])
    plan = p.restore([StoredTI(k("a"), S.UP_FOR_RETRY, 1, next_retry_at=50.0)], {}, now=20.0)
    assert plan.to_start == []
    assert plan.wake_at == 50.0
    assert p.tick(50.0).to_start == [k("a")]
    assert p.try_number(k("a")) == 2
