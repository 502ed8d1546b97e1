"""Trigger rules: when may a task run, given the states of its upstream task instances."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from airloop.core.states import TaskState


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_SKIPPED = "none_skipped"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ALWAYS = "always"
    ALL_SKIPPED = "all_skipped"
    ONE_DONE = "one_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    #: A teardown's rule (Airflow's): all upstream done and, if any upstream is a
    #: setup task, one setup succeeded (all setups skipped: skipped; none succeeded:
    #: upstream_failed).
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"


class Verdict(StrEnum):
    WAIT = "wait"
    READY = "ready"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream_failed"


def evaluate(
    rule: TriggerRule,
    counts: Mapping[TaskState, int],
    total: int,
    setup_counts: Mapping[TaskState, int] | None = None,
    setup_total: int = 0,
) -> Verdict:
    """Decide a task's fate from the counts of its upstream task instances' states.

    ``total`` is the number of upstream task instances (mapped upstreams count each
    expanded instance; an unexpanded mapped upstream counts as one unfinished).
    ``setup_counts``/``setup_total`` are the same for the upstream setup tasks only
    (included in ``counts``), for ``all_done_setup_success``.
    The semantics follow Airflow's: a rule that can no longer be met decides early.
    """
    success = counts.get(TaskState.SUCCESS, 0)
    own_failed = counts.get(TaskState.FAILED, 0)
    failed = own_failed + counts.get(TaskState.UPSTREAM_FAILED, 0)
    skipped = counts.get(TaskState.SKIPPED, 0)
    removed = counts.get(TaskState.REMOVED, 0)
    total -= removed
    done = success + failed + skipped
    all_done = done >= total

    if rule is TriggerRule.ALWAYS or total == 0:
        return Verdict.READY
    if rule is TriggerRule.ALL_SUCCESS:
        if failed:
            return Verdict.UPSTREAM_FAILED
        if skipped:
            return Verdict.SKIP
        return Verdict.READY if success >= total else Verdict.WAIT
    if rule is TriggerRule.ALL_FAILED:
        if success or skipped:
            return Verdict.SKIP
        return Verdict.READY if all_done else Verdict.WAIT
    if rule is TriggerRule.ALL_DONE:
        return Verdict.READY if all_done else Verdict.WAIT
    if rule is TriggerRule.ALL_DONE_SETUP_SUCCESS:
        if not all_done:
            return Verdict.WAIT
        if setup_total and setup_counts is not None:
            setup_skipped = setup_counts.get(TaskState.SKIPPED, 0)
            if setup_skipped >= setup_total:
                return Verdict.SKIP
            if not setup_counts.get(TaskState.SUCCESS, 0):
                return Verdict.UPSTREAM_FAILED
        return Verdict.READY
    if rule is TriggerRule.ONE_SUCCESS:
        if success:
            return Verdict.READY
        if not all_done:
            return Verdict.WAIT
        return Verdict.SKIP if skipped == total else Verdict.UPSTREAM_FAILED
    if rule is TriggerRule.ONE_FAILED:
        if failed:
            return Verdict.READY
        return Verdict.SKIP if all_done else Verdict.WAIT
    if rule is TriggerRule.NONE_FAILED:
        if failed:
            return Verdict.UPSTREAM_FAILED
        return Verdict.READY if all_done else Verdict.WAIT
    if rule is TriggerRule.NONE_SKIPPED:
        if skipped:
            return Verdict.SKIP
        return Verdict.READY if all_done else Verdict.WAIT
    if rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
        if failed:
            return Verdict.UPSTREAM_FAILED
        if not all_done:
            return Verdict.WAIT
        return Verdict.READY if success else Verdict.SKIP
    if rule is TriggerRule.ALL_SKIPPED:
        if success or failed:
            return Verdict.SKIP
        return Verdict.READY if skipped >= total else Verdict.WAIT
    if rule is TriggerRule.ONE_DONE:
        # As in Airflow, "done" here is success or failed: upstream_failed does not count.
        if success or own_failed:
            return Verdict.READY
        return Verdict.SKIP if all_done else Verdict.WAIT
    if rule is TriggerRule.ALL_DONE_MIN_ONE_SUCCESS:
        # Airflow 3 does not count a skipped upstream as done for this rule: it skips.
        if skipped:
            return Verdict.SKIP
        if not all_done:
            return Verdict.WAIT
        return Verdict.READY if success else Verdict.UPSTREAM_FAILED
    raise AssertionError(f"unhandled trigger rule {rule!r}")  # pragma: no cover
