"""The task-instance state machine: which transitions are legal, and how illegal ones fail."""

from __future__ import annotations

import itertools

import pytest

from airloop.core.states import (
    ACTIVE,
    FAILED_LIKE,
    TERMINAL,
    TRANSITIONS,
    DagRunState,
    InvalidTransition,
    TaskState,
    check_transition,
)

S = TaskState

#: The table as the design intends it, written out independently of the module.
EXPECTED_TRANSITIONS: dict[TaskState, set[TaskState]] = {
    S.NONE: {S.SCHEDULED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED, S.FAILED},
    # -> SKIPPED: a fail_fast run skips what has not started yet.
    S.SCHEDULED: {S.QUEUED, S.FAILED, S.REMOVED, S.SKIPPED},
    # -> SCHEDULED: the same try starts again after a restart (see RunPlanner.restore).
    S.QUEUED: {S.RUNNING, S.SUCCESS, S.FAILED, S.SKIPPED, S.UP_FOR_RETRY, S.SCHEDULED},
    S.RUNNING: {S.SUCCESS, S.FAILED, S.SKIPPED, S.UP_FOR_RETRY, S.SCHEDULED},
    S.UP_FOR_RETRY: {S.SCHEDULED, S.FAILED, S.SKIPPED},
    S.SUCCESS: set(),
    S.FAILED: set(),
    S.SKIPPED: set(),
    S.UPSTREAM_FAILED: set(),
    S.REMOVED: set(),
}

LEGAL = sorted((old, new) for old, news in EXPECTED_TRANSITIONS.items() for new in news)
ILLEGAL = sorted(
    (old, new)
    for old, new in itertools.product(TaskState, TaskState)
    if new not in EXPECTED_TRANSITIONS[old]
)


def test_table_covers_every_state_and_matches_the_design() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    assert {old: set(news) for old, news in TRANSITIONS.items()} == EXPECTED_TRANSITIONS
    # 23 legal moves out of 10 x 10 pairs.
    assert len(LEGAL) == 23
    assert len(ILLEGAL) == 77


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=[f"{o}->{n}" for o, n in LEGAL])
def test_legal_transition_is_accepted(old: TaskState, new: TaskState) -> None:
    assert check_transition("ti", old, new) is None


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{o}->{n}" for o, n in ILLEGAL])
def test_illegal_transition_raises(old: TaskState, new: TaskState) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("task instance t[3]", old, new)
    assert info.value.old is old
    assert info.value.new is new
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert message.startswith(f"task instance t[3]: illegal transition {old} -> {new} ")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            S.NONE,
            S.RUNNING,
            "t: illegal transition none -> running (from none allowed: "
            "failed, removed, scheduled, skipped, upstream_failed)",
        ),
        (
            S.SCHEDULED,
            S.SUCCESS,
            "t: illegal transition scheduled -> success (from scheduled allowed: "
            "failed, queued, removed, skipped)",
        ),
        (
            S.RUNNING,
            S.QUEUED,
            "t: illegal transition running -> queued (from running allowed: "
            "failed, scheduled, skipped, success, up_for_retry)",
        ),
        (
            S.UP_FOR_RETRY,
            S.QUEUED,
            "t: illegal transition up_for_retry -> queued (from up_for_retry allowed: "
            "failed, scheduled, skipped)",
        ),
        (
            S.QUEUED,
            S.QUEUED,
            "t: illegal transition queued -> queued (from queued allowed: "
            "failed, running, scheduled, skipped, success, up_for_retry)",
        ),
        (
            S.SUCCESS,
            S.RUNNING,
            "t: illegal transition success -> running (from success allowed: nothing (terminal))",
        ),
        (
            S.FAILED,
            S.UP_FOR_RETRY,
            "t: illegal transition failed -> up_for_retry (from failed allowed: nothing (terminal))",
        ),
        (
            S.REMOVED,
            S.NONE,
            "t: illegal transition removed -> none (from removed allowed: nothing (terminal))",
        ),
    ],
)
def test_illegal_transition_message_lists_what_is_allowed(
    old: TaskState, new: TaskState, message: str
) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("t", old, new)
    assert str(info.value) == message


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_have_no_exits(state: TaskState) -> None:
    assert TRANSITIONS[state] == frozenset()
    for new in TaskState:
        with pytest.raises(InvalidTransition, match=r"nothing \(terminal\)"):
            check_transition("t", state, new)


def test_terminal_is_exactly_the_states_without_exits() -> None:
    assert frozenset(s for s, news in TRANSITIONS.items() if not news) == TERMINAL
    assert {S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED} == TERMINAL


def test_no_state_may_transition_to_itself_or_back_to_none() -> None:
    for state in TaskState:
        assert state not in TRANSITIONS[state]
        assert S.NONE not in TRANSITIONS[state]


def test_every_non_terminal_state_can_reach_a_terminal_state() -> None:
    for start in TaskState:
        seen = {start}
        frontier = [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, start


def test_state_groups() -> None:
    assert {S.QUEUED, S.RUNNING} == ACTIVE
    assert {S.FAILED, S.UPSTREAM_FAILED} == FAILED_LIKE
    assert not ACTIVE & TERMINAL
    assert FAILED_LIKE <= TERMINAL
    # Only a retry, or a resume after a restart, leaves the active states unfinished.
    assert {new for a in ACTIVE for new in TRANSITIONS[a]} - TERMINAL - ACTIVE == {
        S.UP_FOR_RETRY,
        S.SCHEDULED,
    }


@pytest.mark.parametrize(
    ("state", "value"),
    [
        (S.NONE, "none"),
        (S.SCHEDULED, "scheduled"),
        (S.QUEUED, "queued"),
        (S.RUNNING, "running"),
        (S.SUCCESS, "success"),
        (S.FAILED, "failed"),
        (S.SKIPPED, "skipped"),
        (S.UPSTREAM_FAILED, "upstream_failed"),
        (S.UP_FOR_RETRY, "up_for_retry"),
        (S.REMOVED, "removed"),
    ],
)
def test_state_values_are_stable_strings(state: TaskState, value: str) -> None:
    # These strings are persisted; renaming one is a migration, not a refactor.
    assert state == value
    assert str(state) == value
    assert TaskState(value) is state


def test_dag_run_states() -> None:
    assert [str(s) for s in DagRunState] == ["queued", "running", "success", "failed"]
