"""Task-instance and DAG-run states, and the table of legal transitions."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """The life of one task instance (one try of one map index of one task in a run)."""

    NONE = "none"  # created, dependencies not yet met
    SCHEDULED = "scheduled"  # dependencies met, waiting for a pool slot / capacity
    QUEUED = "queued"  # handed to an executor
    RUNNING = "running"  # the executor reported that it started
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    UP_FOR_RETRY = "up_for_retry"  # failed, will be scheduled again at next_retry_at
    REMOVED = "removed"  # a mapped placeholder replaced by its expansion


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


#: States after which nothing more happens to a task instance in this run.
TERMINAL: frozenset[TaskState] = frozenset(
    {
        TaskState.SUCCESS,
        TaskState.FAILED,
        TaskState.SKIPPED,
        TaskState.UPSTREAM_FAILED,
        TaskState.REMOVED,
    }
)
#: States that hold a pool slot / count against max_active_tasks.
ACTIVE: frozenset[TaskState] = frozenset({TaskState.QUEUED, TaskState.RUNNING})
#: States counted as "failed" by trigger rules.
FAILED_LIKE: frozenset[TaskState] = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})

_S = TaskState
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.NONE: frozenset({_S.SCHEDULED, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED, _S.FAILED}),
    # -> SKIPPED: a fail_fast run skips what has not started yet.
    _S.SCHEDULED: frozenset({_S.QUEUED, _S.FAILED, _S.REMOVED, _S.SKIPPED}),
    # -> SCHEDULED: the same try is started again after airloop was restarted
    # (queued but never started, or running and able to re-attach to its work).
    _S.QUEUED: frozenset(
        {_S.RUNNING, _S.SUCCESS, _S.FAILED, _S.SKIPPED, _S.UP_FOR_RETRY, _S.SCHEDULED}
    ),
    _S.RUNNING: frozenset({_S.SUCCESS, _S.FAILED, _S.SKIPPED, _S.UP_FOR_RETRY, _S.SCHEDULED}),
    _S.UP_FOR_RETRY: frozenset({_S.SCHEDULED, _S.FAILED, _S.SKIPPED}),
    _S.SUCCESS: frozenset(),
    _S.FAILED: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.UPSTREAM_FAILED: frozenset(),
    _S.REMOVED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """Raised when code asks for a state change the table does not allow: a bug, never input."""

    def __init__(self, what: str, old: TaskState, new: TaskState, detail: str = "") -> None:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "nothing (terminal)"
        super().__init__(
            f"{what}: illegal transition {old} -> {new} (from {old} allowed: {allowed}){detail}"
        )
        self.old = old
        self.new = new


def check_transition(what: str, old: TaskState, new: TaskState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(what, old, new)
