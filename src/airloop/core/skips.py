"""Skips decided by tasks (branching, short circuits) and by the run (fail_fast), and
which tasks decide a run's state when some are teardowns. Pure helpers of the planner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from airloop.core.specs import TaskSpec


def skip_reason(task_id: str) -> str:
    """The note on a task instance a finished task skipped (branch, short circuit)."""
    return f"skipped by {task_id!r}"


def fail_fast_reason(failed: str) -> str:
    """The note on what a fail_fast run skips or stops when ``failed`` fails."""
    return f"fail_fast: task {failed} failed"


def effective_leaves(
    specs: Mapping[str, TaskSpec], downstream: Mapping[str, Sequence[str]]
) -> list[str]:
    """The tasks whose states decide the run's, as in Airflow 3.

    A teardown is ignored unless ``on_failure_fail_dagrun``; a task whose only
    downstream tasks are ignored teardowns is a leaf. A DAG of nothing but ignored
    teardowns is decided by its plain leaves.
    """

    plain = [t for t, downs in downstream.items() if not downs]
    if not any(s.is_teardown for s in specs.values()):
        return plain  # no teardown to see through: the leaves are the plain ones

    def ignored(task_id: str) -> bool:
        spec = specs[task_id]
        return spec.is_teardown and not spec.on_failure_fail_dagrun

    leaves = [
        t for t, downs in downstream.items() if not ignored(t) and all(ignored(d) for d in downs)
    ]
    return leaves or plain
