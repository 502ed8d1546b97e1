"""Skips decided by tasks (branch, short circuit), setup/teardown and fail_fast, at the
planner: events in, decisions out; no loop, no real time."""

from __future__ import annotations

from typing import Any

from airloop.core.outcomes import Outcome
from airloop.core.plan import Plan
from airloop.core.planner import RunPlanner
from airloop.core.pools import PoolLedger
from airloop.core.retry import RetryPolicy
from airloop.core.skips import effective_leaves
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import DagRunState, TaskState
from airloop.core.stimuli import Failed, Started, Succeeded
from airloop.core.trigger_rules import TriggerRule, Verdict, evaluate

S = TaskState
T = TriggerRule


def k(name: str) -> TIKey:
    return TIKey(name)


def spec(task_id: str, *upstream: str, **kwargs: Any) -> TaskSpec:
    return TaskSpec(task_id, upstream=upstream, **kwargs)


def planner(*specs: TaskSpec, fail_fast: bool = False) -> RunPlanner:
    p = RunPlanner(
        specs,
        pools=PoolLedger({"default_pool": 100}),
        max_active_tasks=100,
        fail_fast=fail_fast,
    )
    p.checking = True
    p.start(0.0)
    return p


def ok(p: RunPlanner, name: str, *skip: str) -> Plan:
    return p.handle([Started(k(name)), Succeeded(k(name), skip_downstream=skip)], 0.0)


def fail(p: RunPlanner, name: str) -> Plan:
    return p.handle([Started(k(name)), Failed(k(name), f"{name} broke", retryable=False)], 0.0)


def states(p: RunPlanner, *names: str) -> dict[str, S]:
    return {n: p.state_of(k(n)) for n in names}


# -- branching ------------------------------------------------------------------------


def branch_dag() -> RunPlanner:
    """branch -> [left, right]; left -> after_left; [after_left, right] -> join."""
    return planner(
        spec("branch"),
        spec("left", "branch"),
        spec("right", "branch"),
        spec("after_left", "left"),
        spec("join", "after_left", "right", trigger_rule=T.NONE_FAILED_MIN_ONE_SUCCESS),
    )


def test_a_branch_skips_the_unchosen_path_and_the_join_runs() -> None:
    p = branch_dag()
    plan = ok(p, "branch", "left")
    # The skip is in the same plan as the branch's success: one write, safe on restart.
    assert [(str(c.key), c.new, c.reason) for c in plan.changes if c.new is S.SKIPPED] == [
        ("left", S.SKIPPED, "skipped by 'branch'"),
        ("after_left", S.SKIPPED, "skipped by trigger rule"),
    ]
    assert states(p, "right", "join") == {"right": S.QUEUED, "join": S.NONE}
    ok(p, "right")
    assert p.state_of(k("join")) is S.QUEUED
    ok(p, "join")
    assert p.run_state is DagRunState.SUCCESS


def test_an_all_success_task_below_a_skipped_one_is_skipped() -> None:
    p = planner(spec("branch"), spec("a", "branch"), spec("b", "branch"), spec("c", "a", "b"))
    ok(p, "branch", "a")
    ok(p, "b")
    assert states(p, "a", "c") == {"a": S.SKIPPED, "c": S.SKIPPED}
    assert p.run_state is DagRunState.SUCCESS


def test_only_undecided_instances_are_skipped() -> None:
    # 'always' was scheduled at the start: a skip does not take it back.
    p = planner(spec("branch"), spec("always", "branch", trigger_rule=T.ALWAYS))
    assert p.state_of(k("always")) is S.QUEUED
    ok(p, "branch", "always")
    assert p.state_of(k("always")) is S.QUEUED


def test_a_mapped_task_on_the_unchosen_path_is_skipped_before_it_expands() -> None:
    from airloop.core.specs import MapSource

    p = planner(
        spec("branch"),
        spec("mapped", "branch", map_sources=(MapSource("x", literal_length=3),)),
        spec("other", "branch"),
    )
    plan = ok(p, "branch", "mapped")
    assert plan.expansions == []
    assert p.state_of(k("mapped")) is S.SKIPPED
    ok(p, "other")
    assert p.run_state is DagRunState.SUCCESS


def test_short_circuit_skipping_everything_below_beats_all_done() -> None:
    # ignore_downstream_trigger_rules=True: the worker names every task below.
    p = planner(spec("check"), spec("a", "check"), spec("done", "a", trigger_rule=T.ALL_DONE))
    ok(p, "check", "a", "done")
    assert states(p, "a", "done") == {"a": S.SKIPPED, "done": S.SKIPPED}
    assert p.run_state is DagRunState.SUCCESS


def test_short_circuit_skipping_the_direct_tasks_lets_all_done_run() -> None:
    # ignore_downstream_trigger_rules=False: only the direct task is named.
    p = planner(spec("check"), spec("a", "check"), spec("done", "a", trigger_rule=T.ALL_DONE))
    ok(p, "check", "a")
    assert states(p, "a", "done") == {"a": S.SKIPPED, "done": S.QUEUED}


# -- setup and teardown -----------------------------------------------------------------


def setup_dag(*, fail_dagrun: bool = False) -> RunPlanner:
    """create (setup) -> work -> delete (teardown of create)."""
    return planner(
        spec("create", is_setup=True),
        spec("work", "create"),
        spec(
            "delete",
            "create",
            "work",
            trigger_rule=T.ALL_DONE_SETUP_SUCCESS,
            is_teardown=True,
            on_failure_fail_dagrun=fail_dagrun,
        ),
    )


def test_a_teardown_runs_after_failed_work_and_the_run_fails() -> None:
    p = setup_dag()
    ok(p, "create")
    fail(p, "work")
    assert p.state_of(k("delete")) is S.QUEUED
    ok(p, "delete")
    assert p.run_state is DagRunState.FAILED


def test_a_failed_teardown_does_not_fail_the_run() -> None:
    p = setup_dag()
    ok(p, "create")
    ok(p, "work")
    fail(p, "delete")
    assert p.run_state is DagRunState.SUCCESS


def test_a_failed_teardown_fails_the_run_with_on_failure_fail_dagrun() -> None:
    p = setup_dag(fail_dagrun=True)
    ok(p, "create")
    ok(p, "work")
    fail(p, "delete")
    assert p.run_state is DagRunState.FAILED


def test_a_teardown_whose_setup_failed_does_not_run() -> None:
    p = setup_dag()
    fail(p, "create")
    assert states(p, "work", "delete") == {"work": S.UPSTREAM_FAILED, "delete": S.UPSTREAM_FAILED}
    assert p.run_state is DagRunState.FAILED


def test_a_teardown_whose_setups_were_skipped_is_skipped() -> None:
    p = planner(
        spec("branch"),
        spec("create", "branch", is_setup=True),
        spec("other", "branch"),
        spec("delete", "create", trigger_rule=T.ALL_DONE_SETUP_SUCCESS, is_teardown=True),
    )
    ok(p, "branch", "create")
    assert p.state_of(k("delete")) is S.SKIPPED


def test_setup_counts_survive_a_restart() -> None:
    from airloop.core.plan import StoredTI

    p = RunPlanner(
        [
            spec("create", is_setup=True),
            spec("work", "create"),
            spec(
                "delete", "create", "work", trigger_rule=T.ALL_DONE_SETUP_SUCCESS, is_teardown=True
            ),
        ],
        pools=PoolLedger({"default_pool": 10}),
        max_active_tasks=10,
    )
    p.checking = True
    p.restore([StoredTI(k("create"), S.SUCCESS, 1), StoredTI(k("work"), S.FAILED, 1)], {}, 0.0)
    assert p.state_of(k("delete")) is S.QUEUED


def test_effective_leaves_ignore_teardowns_unless_they_fail_the_run() -> None:
    specs = {
        "s": spec("s", is_setup=True),
        "w": spec("w", "s"),
        "t": spec("t", "s", "w", is_teardown=True),
        "t2": spec("t2", "w", is_teardown=True, on_failure_fail_dagrun=True),
    }
    downstream = {"s": ["w", "t"], "w": ["t", "t2"], "t": [], "t2": []}
    assert effective_leaves(specs, downstream) == ["t2"]
    del specs["t2"]
    assert effective_leaves(specs, {"s": ["w", "t"], "w": ["t"], "t": []}) == ["w"]


def test_all_done_setup_success_verdicts() -> None:
    rule = T.ALL_DONE_SETUP_SUCCESS
    done = {S.SUCCESS: 1, S.FAILED: 1}
    assert evaluate(rule, {S.FAILED: 1, S.NONE: 1}, 2, {S.SUCCESS: 1}, 1) is Verdict.WAIT
    assert evaluate(rule, done, 2, {S.SUCCESS: 1}, 1) is Verdict.READY
    assert evaluate(rule, {S.FAILED: 2}, 2, {S.FAILED: 1}, 1) is Verdict.UPSTREAM_FAILED
    assert evaluate(rule, {S.SKIPPED: 2}, 2, {S.SKIPPED: 1}, 1) is Verdict.SKIP
    assert evaluate(rule, done, 2) is Verdict.READY  # no setup upstream: all_done


# -- fail_fast --------------------------------------------------------------------------


def test_fail_fast_cancels_running_tasks_skips_the_rest_and_teardowns_run() -> None:
    p = planner(
        spec("create", is_setup=True),
        spec("bad", "create"),
        spec("slow", "create"),
        spec("later", "slow"),
        spec("retrying", "create", retry=RetryPolicy(retries=3, delay=60.0)),
        spec(
            "delete",
            "create",
            "bad",
            "slow",
            "later",
            "retrying",
            trigger_rule=T.ALL_DONE_SETUP_SUCCESS,
            is_teardown=True,
        ),
        fail_fast=True,
    )
    ok(p, "create")
    p.handle([Started(k("slow")), Started(k("retrying")), Failed(k("retrying"), "flaky")], 0.0)
    assert p.state_of(k("retrying")) is S.UP_FOR_RETRY
    plan = fail(p, "bad")
    assert [str(key) for key in plan.to_cancel] == ["slow"]
    assert p.fail_fast_reason == "fail_fast: task bad failed"
    assert states(p, "later", "retrying", "delete") == {
        "later": S.SKIPPED,
        "retrying": S.SKIPPED,
        "delete": S.NONE,
    }
    # The cancelled task reports its interruption; then the teardown runs.
    p.handle(
        [Failed(k("slow"), "interrupted: fail_fast", retryable=False, outcome=Outcome.INTERRUPTED)],
        0.0,
    )
    assert states(p, "slow", "delete") == {"slow": S.FAILED, "delete": S.QUEUED}
    assert p.tick(100.0).to_start == []  # the skipped retry is not released
    ok(p, "delete")
    assert p.run_state is DagRunState.FAILED


def test_fail_fast_skips_scheduled_tasks_waiting_for_a_slot() -> None:
    p = RunPlanner(
        [spec("bad", priority_weight=10), spec("a"), spec("b")],
        pools=PoolLedger({"default_pool": 1}),
        max_active_tasks=10,
        fail_fast=True,
    )
    p.checking = True
    p.start(0.0)
    assert states(p, "bad", "a", "b") == {"bad": S.QUEUED, "a": S.SCHEDULED, "b": S.SCHEDULED}
    plan = fail(p, "bad")
    assert plan.to_start == []
    assert states(p, "a", "b") == {"a": S.SKIPPED, "b": S.SKIPPED}
    assert not p.waiting
    assert p.run_state is DagRunState.FAILED


def test_fail_fast_is_applied_again_after_a_restart() -> None:
    from airloop.core.plan import StoredTI

    p = RunPlanner(
        [spec("bad"), spec("slow"), spec("after", "slow")],
        pools=PoolLedger({"default_pool": 10}),
        max_active_tasks=10,
        fail_fast=True,
    )
    p.checking = True
    # Stored while the stop was under way: 'slow' was queued, 'after' never reached.
    p.restore([StoredTI(k("bad"), S.FAILED, 1), StoredTI(k("slow"), S.QUEUED, 1)], {}, 0.0)
    # 'slow' may have started before the restart: lost (it has no retries), not skipped.
    assert states(p, "slow", "after") == {"slow": S.FAILED, "after": S.SKIPPED}
    assert p.run_state is DagRunState.FAILED


def test_fail_fast_is_not_set_off_by_a_teardown_that_does_not_fail_the_run() -> None:
    p = planner(
        spec("create", is_setup=True),
        spec("delete", "create", trigger_rule=T.ALL_DONE_SETUP_SUCCESS, is_teardown=True),
        spec("other", "create"),
        fail_fast=True,
    )
    ok(p, "create")
    fail(p, "delete")
    assert p.fail_fast_reason is None
    ok(p, "other")
    assert p.run_state is DagRunState.SUCCESS


def test_fail_fast_is_set_off_by_a_mapping_failure() -> None:
    from airloop.core.specs import MapSource

    p = planner(
        spec("source"),
        spec("mapped", "source", map_sources=(MapSource("x", upstream="source"),)),
        spec("sibling"),
        fail_fast=True,
    )
    p.handle([Started(k("source")), Succeeded(k("source"), output_length=None)], 0.0)
    assert p.state_of(k("mapped")) is S.FAILED
    assert p.fail_fast_reason == "fail_fast: task mapped failed"


def test_without_fail_fast_a_failure_stops_nothing() -> None:
    p = planner(spec("bad"), spec("other"))
    plan = fail(p, "bad")
    assert plan.to_cancel == []
    assert p.state_of(k("other")) is S.QUEUED
