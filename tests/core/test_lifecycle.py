"""Stopping, aborting and grace expiry as planner stimuli (ADR 0019): table tests, no loop."""

from __future__ import annotations

import pytest

from airloop.core.outcomes import Outcome
from airloop.core.planner import RunPlanner
from airloop.core.pools import PoolLedger
from airloop.core.retry import RetryPolicy
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import DagRunState
from airloop.core.states import TaskState as S
from airloop.core.stimuli import (
    AbortRequested,
    Failed,
    GraceExpired,
    Started,
    StopRequested,
    Succeeded,
)


def k(name: str) -> TIKey:
    return TIKey(name)


def interrupted(name: str) -> Failed:
    return Failed(k(name), "interrupted: stop", retryable=False, outcome=Outcome.INTERRUPTED)


def planner() -> RunPlanner:
    """a and b run, c waits for a slot, r waits for its retry, d waits for a."""
    p = RunPlanner(
        [
            TaskSpec("a"),
            TaskSpec("b"),
            TaskSpec("r", retry=RetryPolicy(retries=1, delay=60.0)),
            TaskSpec("c"),
            TaskSpec("d", upstream=("a",)),
        ],
        pools=PoolLedger({"default_pool": 100}),
        max_active_tasks=3,
    )
    p.start(0.0)
    p.handle([Started(k("a")), Failed(k("r"), "flaky")], 0.0)
    return p


def states(p: RunPlanner) -> dict[str, S]:
    return {t: p.state_of(k(t)) for t in "abcdr"}


def test_a_stop_cancels_what_runs_then_fails_the_run_once_it_stopped() -> None:
    p = planner()
    assert (states(p)["c"], states(p)["r"]) == (S.QUEUED, S.UP_FOR_RETRY)
    plan = p.handle([StopRequested("stop")], 1.0)
    assert sorted(map(str, plan.to_cancel)) == ["a", "b", "c"]
    assert plan.to_start == []
    assert not p.finished
    p.handle([interrupted("a"), interrupted("b")], 2.0)
    assert not p.finished  # c has not reported yet
    plan = p.handle([interrupted("c")], 3.0)
    assert plan.run_state is DagRunState.FAILED
    assert states(p) == {
        "a": S.FAILED,
        "b": S.FAILED,
        "c": S.FAILED,
        "d": S.UPSTREAM_FAILED,
        "r": S.FAILED,
    }
    assert {c.key.task_id: c.reason for c in plan.changes if c.new is S.FAILED} == {
        "c": "interrupted: stop",
        "r": "interrupted: stop",
    }


def test_a_keeping_stop_leaves_interrupted_tries_running_and_keeps_the_run() -> None:
    p = planner()
    p.handle([StopRequested("service stop", keep=True)], 1.0)
    assert not p.handle([interrupted("a"), interrupted("b")], 2.0).kept
    plan = p.handle([interrupted("c")], 2.0)
    assert plan.kept
    assert p.kept
    assert not p.finished
    assert plan.changes == []
    assert (states(p)["a"], states(p)["c"]) == (S.RUNNING, S.QUEUED)


@pytest.mark.parametrize("keep", [False, True])
def test_grace_expiry_settles_what_did_not_stop(keep: bool) -> None:
    p = planner()
    p.handle([StopRequested("stop", keep=keep)], 1.0)
    p.handle([interrupted("a"), interrupted("b")], 2.0)
    plan = p.handle([GraceExpired(5.0)], 6.0)
    if keep:
        assert plan.kept
        assert states(p)["c"] is S.QUEUED
    else:
        assert plan.run_state is DagRunState.FAILED
        (change,) = [c for c in plan.changes if c.key == k("c")]
        assert change.reason == "interrupted: stop; did not stop within the 5s grace period"


def test_an_abort_waits_for_the_cancelled_then_fails_the_rest_with_its_reason() -> None:
    p = planner()
    plan = p.handle([AbortRequested("dagrun_timeout of 1s exceeded")], 1.0)
    assert sorted(map(str, plan.to_cancel)) == ["a", "b", "c"]
    plan = p.handle([Succeeded(k("a")), interrupted("b"), interrupted("c")], 2.0)
    assert plan.to_start == []  # d became ready, but nothing starts any more
    assert plan.run_state is DagRunState.FAILED
    assert states(p)["d"] is S.FAILED
    assert {c.key.task_id: c.reason for c in plan.changes if c.key.task_id in "dr"} == {
        "d": "dagrun_timeout of 1s exceeded",
        "r": "dagrun_timeout of 1s exceeded",
    }
    assert p.abort_reason == "dagrun_timeout of 1s exceeded"


def test_lifecycle_stimuli_after_the_end_change_nothing() -> None:
    p = planner()
    p.handle([StopRequested("stop")], 1.0)
    p.handle([interrupted("a"), interrupted("b"), interrupted("c")], 2.0)
    assert p.finished
    for stimulus in (StopRequested("again"), AbortRequested("late"), GraceExpired(1.0)):
        assert not p.handle([stimulus], 3.0)
