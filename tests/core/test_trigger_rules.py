"""Trigger rules against upstream situations, with Airflow's verdicts.

One table: each row is an upstream situation (the counts of the upstream task
instances' states) and the expected verdict for every rule, in the column order of
``RULES``. The verdicts follow Airflow's ``TriggerRuleDep``: a rule decides as soon
as it can no longer be met (or, for ``one_success``/``one_failed``, as soon as it is
met); a task without upstream tasks is always ready; unfinished states
(none/scheduled/queued/running/up_for_retry) count as not done; ``upstream_failed``
counts as failed (except for ``one_done``, which, like Airflow, counts only ``success``
and ``failed`` as "done"); ``removed`` instances are left out of the reckoning.

``all_done_min_one_success`` follows Airflow 3's implementation: a skipped upstream
skips the task at once. ``all_done_setup_success`` behaves as ``all_done`` because
airloop has no setup tasks (Airflow's rule only adds a condition on upstream setups).
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from airloop.core.states import TaskState
from airloop.core.trigger_rules import TriggerRule, Verdict, evaluate

T = TriggerRule
S = TaskState

#: Column order of the expectation strings below.
RULES: tuple[TriggerRule, ...] = (
    T.ALL_SUCCESS,
    T.ALL_FAILED,
    T.ALL_DONE,
    T.ONE_SUCCESS,
    T.ONE_FAILED,
    T.NONE_FAILED,
    T.NONE_SKIPPED,
    T.NONE_FAILED_MIN_ONE_SUCCESS,
    T.ALWAYS,
    T.ALL_SKIPPED,
    T.ONE_DONE,
    T.ALL_DONE_MIN_ONE_SUCCESS,
    T.ALL_DONE_SETUP_SUCCESS,
)
V = {
    "R": Verdict.READY,
    "W": Verdict.WAIT,
    "S": Verdict.SKIP,
    "U": Verdict.UPSTREAM_FAILED,
}

# Short names for upstream states in the situation rows.
_ABBREV = {
    "ok": S.SUCCESS,
    "fail": S.FAILED,
    "upf": S.UPSTREAM_FAILED,
    "skip": S.SKIPPED,
    "rm": S.REMOVED,
    "none": S.NONE,
    "sched": S.SCHEDULED,
    "queued": S.QUEUED,
    "run": S.RUNNING,
    "retry": S.UP_FOR_RETRY,
}


def _counts(spec: str) -> dict[TaskState, int]:
    """'ok=2 run=1' -> {SUCCESS: 2, RUNNING: 1}."""
    out: dict[TaskState, int] = {}
    for part in spec.split():
        name, _, n = part.partition("=")
        out[_ABBREV[name]] = int(n)
    return out


# situation id, upstream counts, total (None: the sum of the counts), verdicts per RULES:
# AS AF AD OS OF NF NS NFMOS ALWAYS, then  AK (all_skipped) OD (one_done) ADMOS ADSS
TABLE: list[tuple[str, str, int | None, str]] = [
    ("zero_upstream", "", 0, "R R R R R R R R R  R R R R"),
    ("one_success", "ok=1", None, "R S R R S R R R R  S R R R"),
    ("all_success", "ok=3", None, "R S R R S R R R R  S R R R"),
    ("none_started", "none=3", None, "W W W W W W W W R  W W W W"),
    (
        "all_unfinished_states",
        "none=1 sched=1 queued=1 run=1 retry=1",
        None,
        "W W W W W W W W R  W W W W",
    ),
    ("some_running", "ok=2 run=1", None, "W S W R W W W W R  S R W W"),
    ("some_queued_or_scheduled", "ok=1 queued=1 sched=1", None, "W S W R W W W W R  S R W W"),
    ("one_up_for_retry_is_not_failed", "ok=2 retry=1", None, "W S W R W W W W R  S R W W"),
    ("one_failed_rest_success", "ok=2 fail=1", None, "U S R R R U R U R  S R R R"),
    ("one_failed_rest_running", "fail=1 run=2", None, "U W W W R U W U R  S R W W"),
    (
        "one_failed_some_success_some_running",
        "ok=1 fail=1 run=1",
        None,
        "U S W R R U W U R  S R W W",
    ),
    ("one_upstream_failed_rest_success", "ok=2 upf=1", None, "U S R R R U R U R  S R R R"),
    ("one_upstream_failed_rest_running", "upf=1 run=2", None, "U W W W R U W U R  S W W W"),
    ("all_failed", "fail=3", None, "U R R U R U R U R  S R U R"),
    ("all_failed_or_upstream_failed", "fail=2 upf=1", None, "U R R U R U R U R  S R U R"),
    ("some_skipped_rest_success", "ok=2 skip=1", None, "S S R R S R S R R  S R S R"),
    ("some_skipped_rest_running", "skip=1 run=2", None, "S S W W W W S W R  W W S W"),
    ("skipped_success_running", "ok=1 skip=1 run=1", None, "S S W R W W S W R  S R S W"),
    ("all_skipped", "skip=3", None, "S S R S S R S S R  R S S R"),
    ("mixed_done", "ok=1 fail=1 skip=1", None, "U S R R R U S U R  S R S R"),
    ("failed_and_skipped_no_success", "fail=1 skip=2", None, "U S R U R U S U R  S R S R"),
    ("failed_skipped_running", "fail=1 skip=1 run=1", None, "U S W W R U S U R  S R S W"),
    ("removed_rest_success", "ok=2 rm=1", None, "R S R R S R R R R  S R R R"),
    ("removed_rest_running", "ok=1 rm=1 run=1", None, "W S W R W W W W R  S R W W"),
    ("removed_rest_failed", "fail=1 rm=1", None, "U R R U R U R U R  S R U R"),
    ("removed_rest_skipped_and_success", "ok=1 skip=1 rm=2", None, "S S R R S R S R R  S R S R"),
    ("only_upstream_failed", "upf=2", None, "U R R U R U R U R  S S U R"),
    ("skipped_and_removed_only", "skip=1 rm=1", None, "S S R S S R S S R  R S S R"),
    ("upstream_failed_and_success", "ok=1 upf=1", None, "U S R R R U R U R  S R R R"),
    # ``total`` counts instances whose state is not in ``counts`` as unfinished.
    ("unlisted_instances_are_unfinished", "ok=1", 3, "W S W R W W W W R  S R W W"),
]

CASES = [
    pytest.param(rule, _counts(counts), total, V[verdict], id=f"{situation}-{rule}")
    for situation, counts, total, verdicts in TABLE
    for rule, verdict in zip(RULES, verdicts.split(), strict=True)
]


@pytest.mark.parametrize(("rule", "counts", "total", "expected"), CASES)
def test_verdict(
    rule: TriggerRule, counts: Mapping[TaskState, int], total: int | None, expected: Verdict
) -> None:
    if total is None:
        total = sum(counts.values())
    assert evaluate(rule, counts, total) is expected


def test_table_covers_every_rule_and_is_well_formed() -> None:
    assert set(RULES) == set(TriggerRule)
    assert len(RULES) == len(TriggerRule)
    situations = [row[0] for row in TABLE]
    assert len(situations) == len(set(situations))
    assert len(CASES) == len(TABLE) * len(TriggerRule)


def test_evaluate_does_not_mutate_counts() -> None:
    counts = {S.SUCCESS: 1, S.REMOVED: 1, S.RUNNING: 1}
    evaluate(T.ALL_SUCCESS, counts, 3)
    assert counts == {S.SUCCESS: 1, S.REMOVED: 1, S.RUNNING: 1}


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (T.ALL_SUCCESS, "all_success"),
        (T.ALL_FAILED, "all_failed"),
        (T.ALL_DONE, "all_done"),
        (T.ONE_SUCCESS, "one_success"),
        (T.ONE_FAILED, "one_failed"),
        (T.NONE_FAILED, "none_failed"),
        (T.NONE_SKIPPED, "none_skipped"),
        (T.NONE_FAILED_MIN_ONE_SUCCESS, "none_failed_min_one_success"),
        (T.ALWAYS, "always"),
        (T.ALL_SKIPPED, "all_skipped"),
        (T.ONE_DONE, "one_done"),
        (T.ALL_DONE_MIN_ONE_SUCCESS, "all_done_min_one_success"),
        (T.ALL_DONE_SETUP_SUCCESS, "all_done_setup_success"),
    ],
)
def test_rule_names_match_airflow(rule: TriggerRule, value: str) -> None:
    assert TriggerRule(value) is rule


def test_all_thirteen_airflow_rules_exist() -> None:
    assert len(TriggerRule) == 13
