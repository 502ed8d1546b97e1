"""RunPlanner, driven by events and explicit ``now`` floats: no event loop, no real time."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pytest

from airloop.core.plan import Change, Expansion, Plan, PlanningError
from airloop.core.planner import RunPlanner
from airloop.core.pools import DEFAULT_POOL, PoolError, PoolLedger
from airloop.core.retry import RetryPolicy
from airloop.core.specs import UNMAPPED, MapSource, TaskSpec, TIKey
from airloop.core.states import DagRunState, InvalidTransition, TaskState
from airloop.core.stimuli import Event, Failed, Skipped, Started, Succeeded
from airloop.core.trigger_rules import TriggerRule

S = TaskState
T = TriggerRule
RUN_OK = DagRunState.SUCCESS
RUN_FAILED = DagRunState.FAILED

# -- helpers ----------------------------------------------------------------------------


def k(name: str) -> TIKey:
    """'a' -> TIKey('a'); 'm[2]' -> TIKey('m', 2)."""
    if name.endswith("]"):
        task_id, _, index = name[:-1].partition("[")
        return TIKey(task_id, int(index))
    return TIKey(name)


def spec(task_id: str, *upstream: str, **kwargs: Any) -> TaskSpec:
    return TaskSpec(task_id, upstream=upstream, **kwargs)


def literal(n: int, name: str = "x") -> tuple[MapSource, ...]:
    return (MapSource(name, literal_length=n),)


def over(upstream: str, name: str = "items") -> tuple[MapSource, ...]:
    return (MapSource(name, upstream=upstream),)


def changes(plan: Plan) -> list[str]:
    """The plan's state changes as compact 'key:old->new' strings."""
    return [f"{c.key}:{c.old}->{c.new}" for c in plan.changes]


def ok(key: TIKey) -> Event:
    return Succeeded(key)


def fail(key: TIKey) -> Event:
    return Failed(key, f"{key} broke", retryable=False)


def skip(key: TIKey) -> Event:
    return Skipped(key, f"{key} skipped itself")


OUTCOMES: dict[str, Callable[[TIKey], Event]] = {"ok": ok, "fail": fail, "skip": skip}


class Harness:
    """Drives a RunPlanner like a tiny synchronous scheduler, and watches its invariants.

    It records every key the planner asks to start (``started``, in order), keeps the
    ones not yet finished in ``running`` (FIFO), and after every plan checks that the
    pool ledger agrees with what is running and that no pool or the max_active_tasks
    cap is exceeded, remembering the peaks.
    """

    def __init__(
        self,
        specs: Sequence[TaskSpec],
        *,
        pools: Mapping[str, int] | None = None,
        max_active: int = 10_000,
        seed: int = 0,
        ledger: PoolLedger | None = None,
    ) -> None:
        self.ledger = ledger or PoolLedger(pools or {DEFAULT_POOL: 10_000})
        self.external = ledger is not None  # a shared ledger may hold other runs' slots
        self.max_active = max_active
        self.planner = RunPlanner(
            specs, pools=self.ledger, max_active_tasks=max_active, rng=random.Random(seed)
        )
        self.started: list[TIKey] = []
        self.running: deque[TIKey] = deque()
        self.plans: list[Plan] = []
        self.peak_active = 0
        self.peak_used: Counter[str] = Counter()

    # driving

    def start(self, now: float = 0.0) -> Plan:
        return self._record(self.planner.start(now))

    def handle(self, *events: Event, now: float = 0.0, stimulus_id: str = "") -> Plan:
        for event in events:
            if not isinstance(event, Started) and event.key in self.running:
                self.running.remove(event.key)
        return self._record(self.planner.handle(events, now, stimulus_id))

    def tick(self, now: float) -> Plan:
        return self._record(self.planner.tick(now))

    def finish_all(
        self, outcome: Callable[[TIKey], Event] = ok, *, now: float = 0.0
    ) -> Plan | None:
        """Finish running instances one at a time, oldest first, until none is left."""
        last = None
        while self.running:
            last = self.handle(outcome(self.running[0]), now=now)
        return last

    def finish_by_task(self, outcomes: Mapping[str, str], *, now: float = 0.0) -> Plan | None:
        """Like finish_all, with an outcome ('ok', 'fail', 'skip') per task id (default ok)."""
        return self.finish_all(lambda key: OUTCOMES[outcomes.get(key.task_id, "ok")](key), now=now)

    # queries

    @property
    def expansions(self) -> list[Expansion]:
        return [e for plan in self.plans for e in plan.expansions]

    def state(self, name: str) -> TaskState:
        return self.planner.state_of(k(name))

    def states(self, *task_ids: str) -> dict[str, TaskState]:
        return {
            str(key): self.planner.state_of(key)
            for task_id in task_ids
            for key in self.planner.keys(task_id)
        }

    # invariants

    def _record(self, plan: Plan) -> Plan:
        self.plans.append(plan)
        self.started.extend(plan.to_start)
        self.running.extend(plan.to_start)
        for key in plan.to_start:
            assert self.planner.state_of(key) is S.QUEUED
        active = [
            key for key in self.running if self.planner.state_of(key) in (S.QUEUED, S.RUNNING)
        ]
        assert len(active) == len(self.running)
        assert self.planner.active == len(active)
        assert len(active) <= self.max_active
        self.peak_active = max(self.peak_active, len(active))
        used: Counter[str] = Counter()
        for key in active:
            task = self.planner.spec(key.task_id)
            used[task.pool] += task.pool_slots
        for pool, capacity in self.ledger.pools.items():
            assert self.ledger.used(pool) <= capacity
            if not self.external:
                assert self.ledger.used(pool) == used[pool], pool
            self.peak_used[pool] = max(self.peak_used[pool], used[pool])
        if plan.run_state is not None:
            assert self.planner.run_state is plan.run_state
            assert self.planner.finished
        return plan


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([spec("a", "ghost")], "task 'a' depends on unknown task 'ghost'"),
        ([spec("a"), spec("b", "a", "c")], "task 'b' depends on unknown task 'c'"),
        ([spec("a"), spec("b"), spec("a")], "duplicate task id 'a'"),
        (
            [spec("u"), spec("m", map_sources=over("u"))],
            "task 'm' maps over 'u' but does not depend on it",
        ),
        (
            [spec("u"), spec("v"), spec("m", "v", map_sources=over("u"))],
            "task 'm' maps over 'u' but does not depend on it",
        ),
    ],
    ids=["unknown-upstream", "one-of-two-unknown", "duplicate", "map-non-upstream", "map-other"],
)
def test_planning_errors(specs: list[TaskSpec], message: str) -> None:
    with pytest.raises(PlanningError) as info:
        RunPlanner(specs, pools=PoolLedger({DEFAULT_POOL: 1}), max_active_tasks=1)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("max_active", [0, -1])
def test_max_active_tasks_must_be_positive(max_active: int) -> None:
    with pytest.raises(PlanningError, match=f"max_active_tasks must be >= 1, got {max_active}"):
        RunPlanner([spec("a")], pools=PoolLedger({DEFAULT_POOL: 1}), max_active_tasks=max_active)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            spec("a", pool="nope"),
            "task 'a' uses pool 'nope', which does not exist (pools: default_pool, p)",
        ),
        (
            spec("a", pool="p", pool_slots=3),
            "task 'a' needs 3 slots of pool 'p', which has only 2: it could never run",
        ),
        (
            spec("a", pool_slots=5),
            "task 'a' needs 5 slots of pool 'default_pool', which has only 4: it could never run",
        ),
        (
            spec("a", pool="p", pool_slots=0),
            "task 'a' asks for 0 slots of pool 'p'; it needs at least 1",
        ),
    ],
    ids=["unknown-pool", "too-many-slots", "too-many-default-slots", "zero-slots"],
)
def test_pool_errors_at_construction(task: TaskSpec, message: str) -> None:
    ledger = PoolLedger({DEFAULT_POOL: 4, "p": 2})
    with pytest.raises(PoolError) as info:
        RunPlanner([spec("ok"), task], pools=ledger, max_active_tasks=10)
    assert str(info.value) == message
    assert ledger.used("p") == 0


def test_negative_pool_size_is_rejected() -> None:
    with pytest.raises(PoolError, match=r"pool 'p' has a negative size \(-1\)"):
        PoolLedger({"p": -1})


@pytest.mark.parametrize(
    "kwargs", [{}, {"name": "x", "literal_length": 2, "upstream": "u"}], ids=["neither", "both"]
)
def test_map_source_needs_exactly_one_of_literal_or_upstream(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either a literal length or an upstream task"):
        MapSource(**{"name": "x", **kwargs})


def test_events_for_unknown_instances_are_planning_errors() -> None:
    h = Harness([spec("a"), spec("m", map_sources=literal(2))])
    h.start()
    with pytest.raises(PlanningError, match=r"event for unknown task instance ghost"):
        h.planner.handle([Succeeded(k("ghost"))], 0.0)
    with pytest.raises(PlanningError, match=r"event for unknown task instance m\[7\]"):
        h.planner.handle([Succeeded(k("m[7]"))], 0.0)
    with pytest.raises(PlanningError, match=r"event for unknown task instance a\[0\]"):
        h.planner.handle([Succeeded(k("a[0]"))], 0.0)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([Started(k("b"))], "task instance b: illegal transition none -> running"),
        ([Succeeded(k("b"))], "task instance b: illegal transition none -> success"),
        (
            [Succeeded(k("a")), Succeeded(k("a"))],
            "task instance a: illegal transition success -> success",
        ),
        (
            [Started(k("a")), Started(k("a"))],
            "task instance a: illegal transition running -> running",
        ),
    ],
)
def test_impossible_events_raise_invalid_transition(events: list[Event], message: str) -> None:
    h = Harness([spec("a"), spec("b", "a")])
    h.start()
    with pytest.raises(InvalidTransition, match=message):
        h.planner.handle(events, 0.0)


# -- plain runs ---------------------------------------------------------------------------


def test_linear_chain_runs_to_success_step_by_step() -> None:
    h = Harness([spec("a"), spec("b", "a"), spec("c", "b")])

    plan = h.start(0.0)
    assert plan.changes == [
        Change(k("a"), S.NONE, S.SCHEDULED, 0),
        Change(k("a"), S.SCHEDULED, S.QUEUED, 1),
    ]
    assert plan.to_start == [k("a")]
    assert plan.expansions == []
    assert plan.run_state is None
    assert plan.wake_at is None
    assert h.states("a", "b", "c") == {"a": S.QUEUED, "b": S.NONE, "c": S.NONE}
    assert not h.planner.finished

    plan = h.handle(Started(k("a")), now=1.0)
    assert plan.changes == [Change(k("a"), S.QUEUED, S.RUNNING, 1)]
    assert plan.to_start == []

    plan = h.handle(Succeeded(k("a")), now=2.0)
    assert changes(plan) == [
        "a:running->success",
        "b:none->scheduled",
        "b:scheduled->queued",
    ]
    assert plan.to_start == [k("b")]
    assert plan.run_state is None

    plan = h.handle(Succeeded(k("b")), now=3.0)  # straight from queued is fine
    assert changes(plan) == ["b:queued->success", "c:none->scheduled", "c:scheduled->queued"]

    plan = h.handle(Succeeded(k("c")), now=4.0)
    assert changes(plan) == ["c:queued->success"]
    assert plan.to_start == []
    assert plan.run_state is RUN_OK
    assert h.planner.run_state is RUN_OK
    assert h.planner.finished
    assert h.planner.counts() == {S.SUCCESS: 3}
    assert [h.planner.try_number(k(t)) for t in "abc"] == [1, 1, 1]


def test_diamond_joins_wait_for_every_upstream() -> None:
    h = Harness([spec("a"), spec("b", "a"), spec("c", "a"), spec("d", "b", "c")])
    h.start()
    plan = h.handle(Succeeded(k("a")))
    assert plan.to_start == [k("b"), k("c")]
    plan = h.handle(Succeeded(k("c")))
    assert plan.to_start == []
    assert h.state("d") is S.NONE
    plan = h.handle(Succeeded(k("b")))
    assert plan.to_start == [k("d")]
    h.finish_all()
    assert h.started == [k("a"), k("b"), k("c"), k("d")]
    assert h.planner.run_state is RUN_OK


def test_empty_dag_succeeds_at_once() -> None:
    h = Harness([])
    plan = h.start()
    assert plan.run_state is RUN_OK
    assert bool(plan)


def test_plan_truthiness() -> None:
    assert not Plan()
    assert not Plan(wake_at=5.0)
    assert Plan(to_start=[k("a")])
    assert Plan(run_state=RUN_OK)
    assert Plan(expansions=[Expansion("m", 1)])


def test_several_events_in_one_handle_call() -> None:
    h = Harness([spec("a"), spec("b"), spec("c", "a", "b")])
    h.start()
    plan = h.handle(Started(k("a")), Started(k("b")), Succeeded(k("a")), Succeeded(k("b")))
    assert changes(plan) == [
        "a:queued->running",
        "b:queued->running",
        "a:running->success",
        "b:running->success",
        "c:none->scheduled",
        "c:scheduled->queued",
    ]
    assert plan.to_start == [k("c")]


def test_counts_and_task_counts() -> None:
    h = Harness([spec("a"), spec("b"), spec("c", "a")])
    h.start()
    assert h.planner.counts() == {S.QUEUED: 2, S.NONE: 1}
    h.handle(Succeeded(k("a")))
    assert h.planner.counts() == {S.QUEUED: 2, S.SUCCESS: 1}
    assert h.planner.task_counts("a")[S.SUCCESS] == 1
    assert h.planner.task_counts("a")[S.QUEUED] == 0


# -- failure, run state -------------------------------------------------------------------


def test_failure_propagates_upstream_failed_and_the_run_fails() -> None:
    h = Harness(
        [
            spec("a"),
            spec("b", "a"),
            spec("c", "b"),
            spec("d", "a", trigger_rule=T.NONE_FAILED),
            spec("x"),
        ]
    )
    h.start()
    assert h.started == [k("a"), k("x")]
    plan = h.handle(Failed(k("a"), "boom", retryable=False), now=3.0)
    assert plan.changes == [
        Change(k("a"), S.QUEUED, S.FAILED, 1, "boom"),
        # Breadth-first: every direct downstream of a, then theirs.
        Change(k("b"), S.NONE, S.UPSTREAM_FAILED, 0, "an upstream task failed"),
        Change(k("d"), S.NONE, S.UPSTREAM_FAILED, 0, "an upstream task failed"),
        Change(k("c"), S.NONE, S.UPSTREAM_FAILED, 0, "an upstream task failed"),
    ]
    assert plan.to_start == []
    assert plan.run_state is None  # x is still running
    plan = h.handle(Succeeded(k("x")))
    assert plan.run_state is RUN_FAILED
    assert h.states("a", "b", "c", "d", "x") == {
        "a": S.FAILED,
        "b": S.UPSTREAM_FAILED,
        "c": S.UPSTREAM_FAILED,
        "d": S.UPSTREAM_FAILED,
        "x": S.SUCCESS,
    }


@pytest.mark.parametrize(
    ("a", "rule", "h_outcome", "h_state", "run"),
    [
        # a failure handled by a leaf that succeeds does not fail the run
        ("fail", T.ONE_FAILED, "ok", S.SUCCESS, RUN_OK),
        ("fail", T.ALL_DONE, "ok", S.SUCCESS, RUN_OK),
        ("fail", T.ALL_FAILED, "ok", S.SUCCESS, RUN_OK),
        ("fail", T.ALWAYS, "ok", S.SUCCESS, RUN_OK),
        ("fail", T.NONE_SKIPPED, "ok", S.SUCCESS, RUN_OK),
        # ... unless the handler fails too
        ("fail", T.ONE_FAILED, "fail", S.FAILED, RUN_FAILED),
        ("fail", T.ALL_DONE, "fail", S.FAILED, RUN_FAILED),
        # a leaf that cannot run because of the failure fails the run
        ("fail", T.ALL_SUCCESS, None, S.UPSTREAM_FAILED, RUN_FAILED),
        ("fail", T.NONE_FAILED, None, S.UPSTREAM_FAILED, RUN_FAILED),
        ("fail", T.NONE_FAILED_MIN_ONE_SUCCESS, None, S.UPSTREAM_FAILED, RUN_FAILED),
        ("fail", T.ONE_SUCCESS, None, S.UPSTREAM_FAILED, RUN_FAILED),
        # a skipped leaf is fine
        ("ok", T.ONE_FAILED, None, S.SKIPPED, RUN_OK),
        ("ok", T.ALL_FAILED, None, S.SKIPPED, RUN_OK),
        ("skip", T.ALL_SUCCESS, None, S.SKIPPED, RUN_OK),
        ("skip", T.NONE_SKIPPED, None, S.SKIPPED, RUN_OK),
        ("skip", T.ONE_SUCCESS, None, S.SKIPPED, RUN_OK),
        ("skip", T.NONE_FAILED, "ok", S.SUCCESS, RUN_OK),
        ("ok", T.ALL_SUCCESS, "fail", S.FAILED, RUN_FAILED),
    ],
)
def test_leaves_decide_the_run_state(
    a: str, rule: TriggerRule, h_outcome: str | None, h_state: TaskState, run: DagRunState
) -> None:
    h = Harness([spec("a"), spec("h", "a", trigger_rule=rule)])
    h.start()
    h.finish_by_task({"a": a, "h": h_outcome or "ok"})
    assert (k("h") in h.started) is (h_outcome is not None)
    assert h.states("a", "h") == {
        "a": {"ok": S.SUCCESS, "fail": S.FAILED, "skip": S.SKIPPED}[a],
        "h": h_state,
    }
    assert h.planner.run_state is run


def test_one_unhandled_failing_leaf_fails_the_run_despite_a_handler() -> None:
    h = Harness(
        [spec("a"), spec("handler", "a", trigger_rule=T.ONE_FAILED), spec("b", "a"), spec("ok")]
    )
    h.start()
    h.finish_by_task({"a": "fail"})
    assert h.states("handler", "b", "ok") == {
        "handler": S.SUCCESS,
        "b": S.UPSTREAM_FAILED,
        "ok": S.SUCCESS,
    }
    assert h.planner.run_state is RUN_FAILED


def test_run_state_is_reported_once() -> None:
    h = Harness([spec("a")])
    h.start()
    assert h.handle(Succeeded(k("a"))).run_state is RUN_OK
    assert h.tick(100.0).run_state is None
    assert h.planner.run_state is RUN_OK


# -- retries ------------------------------------------------------------------------------


def test_retry_lifecycle_with_fixed_delay() -> None:
    policy = RetryPolicy(retries=2, delay=10.0)
    h = Harness([spec("a", retry=policy), spec("b", "a")])
    plan = h.start(100.0)
    assert plan.changes[-1] == Change(k("a"), S.SCHEDULED, S.QUEUED, 1)
    h.handle(Started(k("a")), now=101.0)

    # try 1 fails: up for retry at now + delay
    plan = h.handle(Failed(k("a"), "e1"), now=105.0)
    assert plan.changes == [Change(k("a"), S.RUNNING, S.UP_FOR_RETRY, 1, "e1", 115.0)]
    assert plan.to_start == []
    assert plan.wake_at == 115.0
    assert plan.run_state is None
    assert h.states("a", "b") == {"a": S.UP_FOR_RETRY, "b": S.NONE}

    # not released before it is due
    for now in (105.0, 110.0, 114.999):
        plan = h.tick(now)
        assert not plan
        assert plan.wake_at == 115.0
        assert h.state("a") is S.UP_FOR_RETRY

    # released exactly when due: try 2
    plan = h.tick(115.0)
    assert plan.changes == [
        Change(k("a"), S.UP_FOR_RETRY, S.SCHEDULED, 1),
        Change(k("a"), S.SCHEDULED, S.QUEUED, 2),
    ]
    assert plan.to_start == [k("a")]
    assert plan.wake_at is None
    assert h.planner.try_number(k("a")) == 2

    # try 2 fails from queued (never started): fixed delay again
    plan = h.handle(Failed(k("a"), "e2"), now=120.0)
    assert plan.changes == [Change(k("a"), S.QUEUED, S.UP_FOR_RETRY, 2, "e2", 130.0)]
    assert plan.wake_at == 130.0

    plan = h.tick(131.0)  # a late tick releases it too
    assert plan.to_start == [k("a")]
    assert h.planner.try_number(k("a")) == 3

    # try 3 fails: retries exhausted
    plan = h.handle(Failed(k("a"), "e3"), now=140.0)
    assert plan.changes == [
        Change(k("a"), S.QUEUED, S.FAILED, 3, "e3"),
        Change(k("b"), S.NONE, S.UPSTREAM_FAILED, 0, "an upstream task failed"),
    ]
    assert plan.wake_at is None
    assert plan.run_state is RUN_FAILED
    assert h.started == [k("a"), k("a"), k("a")]


@pytest.mark.parametrize(
    ("retries", "exponential", "expected_retry_at"),
    [
        (0, False, []),
        (1, False, [10.0]),
        (3, False, [10.0, 20.0, 30.0]),
        (3, True, [10.0, 30.0, 70.0]),  # delays 10, 20, 40
        (4, True, [10.0, 30.0, 70.0, 150.0]),
    ],
)
def test_every_try_fails_until_retries_are_exhausted(
    retries: int, exponential: bool, expected_retry_at: list[float]
) -> None:
    policy = RetryPolicy(retries=retries, delay=10.0, exponential_backoff=exponential, jitter=False)
    h = Harness([spec("a", retry=policy)])
    h.start(0.0)
    now = 0.0
    retry_at: list[float] = []
    while True:
        plan = h.handle(Failed(k("a"), "nope"), now=now)
        if plan.run_state is not None:
            break
        (change,) = plan.changes
        assert change.new is S.UP_FOR_RETRY
        assert change.next_retry_at == plan.wake_at
        assert change.next_retry_at is not None
        retry_at.append(change.next_retry_at)
        now = change.next_retry_at
        assert h.tick(now).to_start == [k("a")]
    assert retry_at == expected_retry_at
    assert plan.run_state is RUN_FAILED
    assert h.state("a") is S.FAILED
    assert h.planner.try_number(k("a")) == retries + 1
    assert len(h.started) == retries + 1


def test_jittered_retry_delay_uses_the_planner_rng() -> None:
    policy = RetryPolicy(retries=1, delay=10.0, exponential_backoff=True, jitter=True)
    h = Harness([spec("a", retry=policy)], seed=5)
    h.start(50.0)
    plan = h.handle(Failed(k("a"), "e"), now=50.0)
    expected = 50.0 + policy.next_delay(1, random.Random(5))
    assert plan.wake_at == expected
    assert plan.changes[0].next_retry_at == expected
    assert 60.0 <= expected <= 65.0


def test_not_retryable_failure_fails_at_once() -> None:
    h = Harness([spec("a", retry=RetryPolicy(retries=5, delay=1.0))])
    h.start()
    plan = h.handle(Failed(k("a"), "bad config", retryable=False), now=1.0)
    assert plan.changes == [Change(k("a"), S.QUEUED, S.FAILED, 1, "bad config")]
    assert plan.wake_at is None
    assert plan.run_state is RUN_FAILED


def test_retry_then_success_lets_downstream_run() -> None:
    h = Harness([spec("a", retry=RetryPolicy(retries=1, delay=5.0)), spec("b", "a")])
    h.start(0.0)
    h.handle(Failed(k("a"), "flaky"), now=1.0)
    assert h.state("b") is S.NONE
    assert h.tick(6.0).to_start == [k("a")]
    plan = h.handle(Succeeded(k("a")), now=7.0)
    assert plan.to_start == [k("b")]
    h.finish_all(now=8.0)
    assert h.planner.run_state is RUN_OK
    assert h.planner.try_number(k("a")) == 2
    assert h.planner.try_number(k("b")) == 1


def test_zero_delay_retry_is_requeued_in_the_same_plan() -> None:
    h = Harness([spec("a", retry=RetryPolicy(retries=1, delay=0.0))])
    h.start(0.0)
    plan = h.handle(Failed(k("a"), "e"), now=5.0)
    assert plan.changes == [
        Change(k("a"), S.QUEUED, S.UP_FOR_RETRY, 1, "e", 5.0),
        Change(k("a"), S.UP_FOR_RETRY, S.SCHEDULED, 1),
        Change(k("a"), S.SCHEDULED, S.QUEUED, 2),
    ]
    assert plan.to_start == [k("a")]
    assert plan.wake_at is None


def test_several_pending_retries_are_released_in_due_order() -> None:
    h = Harness(
        [
            spec("a", retry=RetryPolicy(retries=1, delay=30.0)),
            spec("b", retry=RetryPolicy(retries=1, delay=10.0)),
            spec("c", retry=RetryPolicy(retries=1, delay=20.0)),
        ]
    )
    h.start(0.0)
    plan = h.handle(Failed(k("a"), "e"), Failed(k("b"), "e"), Failed(k("c"), "e"), now=0.0)
    assert plan.wake_at == 10.0
    plan = h.tick(10.0)
    assert plan.to_start == [k("b")]
    assert plan.wake_at == 20.0
    plan = h.tick(19.0)
    assert not plan
    assert plan.wake_at == 20.0
    plan = h.tick(100.0)  # both due: released by due time, then admitted FIFO
    assert plan.to_start == [k("c"), k("a")]
    assert plan.wake_at is None


def test_task_waiting_for_retry_releases_its_pool_slot() -> None:
    h = Harness(
        [
            spec("a", pool="p", retry=RetryPolicy(retries=1, delay=10.0)),
            spec("b", pool="p"),
        ],
        pools={DEFAULT_POOL: 1, "p": 1},
    )
    assert h.start(0.0).to_start == [k("a")]
    assert h.state("b") is S.SCHEDULED
    plan = h.handle(Failed(k("a"), "e"), now=1.0)
    assert plan.to_start == [k("b")]
    plan = h.tick(11.0)  # due, but the only slot is taken by b
    assert changes(plan) == ["a:up_for_retry->scheduled"]
    assert plan.to_start == []
    plan = h.handle(Succeeded(k("b")), now=12.0)
    assert plan.to_start == [k("a")]
    assert h.planner.try_number(k("a")) == 2
    h.finish_all()
    assert h.planner.run_state is RUN_OK
    assert h.ledger.used("p") == 0


def test_retrying_task_does_not_count_against_max_active_tasks() -> None:
    h = Harness([spec("a", retry=RetryPolicy(retries=1, delay=10.0)), spec("b")], max_active=1)
    assert h.start(0.0).to_start == [k("a")]
    assert h.handle(Failed(k("a"), "e"), now=0.0).to_start == [k("b")]


# -- skipping -----------------------------------------------------------------------------


def test_skip_propagates_down_an_all_success_chain() -> None:
    h = Harness([spec("a"), spec("b", "a"), spec("c", "b")])
    h.start()
    plan = h.handle(Skipped(k("a"), "nothing to do"))
    assert plan.changes == [
        Change(k("a"), S.QUEUED, S.SKIPPED, 1, "nothing to do"),
        Change(k("b"), S.NONE, S.SKIPPED, 0, "skipped by trigger rule"),
        Change(k("c"), S.NONE, S.SKIPPED, 0, "skipped by trigger rule"),
    ]
    assert plan.run_state is RUN_OK


def test_skip_without_reason_records_none() -> None:
    h = Harness([spec("a")])
    h.start()
    assert h.handle(Skipped(k("a"))).changes == [Change(k("a"), S.QUEUED, S.SKIPPED, 1, None)]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (T.ALL_SUCCESS, S.SKIPPED),
        (T.ALL_FAILED, S.SKIPPED),
        (T.ALL_DONE, S.QUEUED),
        (T.ONE_SUCCESS, S.SKIPPED),
        (T.ONE_FAILED, S.SKIPPED),
        (T.NONE_FAILED, S.QUEUED),
        (T.NONE_SKIPPED, S.SKIPPED),
        (T.NONE_FAILED_MIN_ONE_SUCCESS, S.SKIPPED),
        (T.ALWAYS, S.QUEUED),
    ],
)
def test_downstream_of_a_skipped_task(rule: TriggerRule, expected: TaskState) -> None:
    h = Harness([spec("a"), spec("d", "a", trigger_rule=rule)])
    h.start()
    h.handle(Skipped(k("a")))
    assert h.state("d") is expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (T.ALL_SUCCESS, S.SKIPPED),
        (T.ONE_SUCCESS, S.QUEUED),
        (T.NONE_FAILED, S.QUEUED),
        (T.NONE_FAILED_MIN_ONE_SUCCESS, S.QUEUED),
        (T.NONE_SKIPPED, S.SKIPPED),
        (T.ALL_DONE, S.QUEUED),
    ],
)
def test_join_after_one_skipped_and_one_successful_branch(
    rule: TriggerRule, expected: TaskState
) -> None:
    h = Harness([spec("a"), spec("b"), spec("j", "a", "b", trigger_rule=rule)])
    h.start()
    h.handle(Skipped(k("a")))
    h.handle(Succeeded(k("b")))
    assert h.state("j") is expected


def test_skip_stops_at_a_none_failed_task_and_the_rest_runs() -> None:
    h = Harness(
        [
            spec("a"),
            spec("b", "a"),
            spec("c", "b", trigger_rule=T.NONE_FAILED),
            spec("d", "c"),
        ]
    )
    h.start()
    h.finish_by_task({"a": "skip"})
    assert h.states("a", "b", "c", "d") == {
        "a": S.SKIPPED,
        "b": S.SKIPPED,
        "c": S.SUCCESS,
        "d": S.SUCCESS,
    }
    assert h.started == [k("a"), k("c"), k("d")]
    assert h.planner.run_state is RUN_OK


# -- mapping ------------------------------------------------------------------------------


def test_mapping_over_a_literal() -> None:
    h = Harness([spec("m", map_sources=literal(3)), spec("d", "m")])
    plan = h.start()
    assert plan.expansions == [Expansion("m", 3)]
    assert changes(plan) == [
        "m[0]:none->scheduled",
        "m[1]:none->scheduled",
        "m[2]:none->scheduled",
        "m[0]:scheduled->queued",
        "m[1]:scheduled->queued",
        "m[2]:scheduled->queued",
    ]
    assert plan.to_start == [k("m[0]"), k("m[1]"), k("m[2]")]
    assert h.planner.keys("m") == [k("m[0]"), k("m[1]"), k("m[2]")]
    assert UNMAPPED not in [key.map_index for key in h.planner.keys("m")]
    assert str(k("m[1]")) == "m[1]"
    assert h.planner.counts() == {S.QUEUED: 3, S.NONE: 1}


def test_downstream_of_a_mapped_task_waits_for_every_instance() -> None:
    h = Harness([spec("m", map_sources=literal(3)), spec("d", "m")])
    h.start()
    h.handle(Succeeded(k("m[2]")))
    assert h.state("d") is S.NONE
    h.handle(Succeeded(k("m[0]")))
    assert h.state("d") is S.NONE
    plan = h.handle(Succeeded(k("m[1]")))
    assert plan.to_start == [k("d")]
    h.finish_all()
    assert h.planner.run_state is RUN_OK
    assert h.planner.counts() == {S.SUCCESS: 4}


def test_failed_mapped_instance_fails_all_success_downstream_early() -> None:
    h = Harness([spec("m", map_sources=literal(3)), spec("d", "m")])
    h.start()
    plan = h.handle(Failed(k("m[1]"), "bad item", retryable=False))
    assert changes(plan) == ["m[1]:queued->failed", "d:none->upstream_failed"]
    assert plan.run_state is None  # m[0] and m[2] still running
    h.finish_all()
    assert h.planner.run_state is RUN_FAILED
    assert h.states("m") == {"m[0]": S.SUCCESS, "m[1]": S.FAILED, "m[2]": S.SUCCESS}


@pytest.mark.parametrize("length", [1, 4, 25])
def test_mapping_over_an_upstream_output_known_at_run_time(length: int) -> None:
    h = Harness([spec("u"), spec("m", "u", map_sources=over("u")), spec("d", "m")])
    plan = h.start()
    assert plan.to_start == [k("u")]
    assert plan.expansions == []
    assert h.planner.keys("m") == [k("m")]
    plan = h.handle(Succeeded(k("u"), output_length=length))
    assert plan.expansions == [Expansion("m", length)]
    assert plan.to_start == [k(f"m[{i}]") for i in range(length)]
    h.finish_all()
    assert h.planner.run_state is RUN_OK
    assert h.started[-1] == k("d")
    assert h.planner.counts() == {S.SUCCESS: length + 2}


@pytest.mark.parametrize("how", ["literal", "upstream"])
def test_mapping_over_an_empty_list_skips(how: str) -> None:
    if how == "literal":
        specs = [spec("u"), spec("m", "u", map_sources=literal(0)), spec("d", "m")]
    else:
        specs = [spec("u"), spec("m", "u", map_sources=over("u")), spec("d", "m")]
    h = Harness(specs)
    h.start()
    plan = h.handle(Succeeded(k("u"), output_length=0))
    assert plan.changes == [
        Change(k("u"), S.QUEUED, S.SUCCESS, 1),
        Change(k("m"), S.NONE, S.SKIPPED, 0, "mapped over an empty list"),
        Change(k("d"), S.NONE, S.SKIPPED, 0, "skipped by trigger rule"),
    ]
    assert plan.expansions == []
    assert plan.run_state is RUN_OK
    assert h.planner.keys("m") == [k("m")]


def test_mapping_a_root_over_an_empty_literal_finishes_the_run_in_start() -> None:
    h = Harness([spec("m", map_sources=literal(0)), spec("d", "m", trigger_rule=T.ALL_DONE)])
    plan = h.start()
    assert changes(plan) == ["m:none->skipped", "d:none->scheduled", "d:scheduled->queued"]
    h.finish_all()
    assert h.planner.run_state is RUN_OK


def test_mapping_over_a_non_list_output_fails_the_placeholder() -> None:
    h = Harness([spec("u"), spec("m", "u", map_sources=over("u")), spec("d", "m")])
    h.start()
    plan = h.handle(Succeeded(k("u"), output_length=None))
    assert plan.changes == [
        Change(k("u"), S.QUEUED, S.SUCCESS, 1),
        Change(
            k("m"),
            S.NONE,
            S.FAILED,
            0,
            "cannot map 'm' over the output of 'u' (argument 'items'): "
            "it did not return a list, tuple or dict",
        ),
        Change(k("d"), S.NONE, S.UPSTREAM_FAILED, 0, "an upstream task failed"),
    ]
    assert plan.expansions == []
    assert plan.run_state is RUN_FAILED


def test_mapping_over_an_upstream_that_did_not_succeed_fails_the_placeholder() -> None:
    h = Harness([spec("u"), spec("m", "u", trigger_rule=T.ALL_DONE, map_sources=over("u"))])
    h.start()
    plan = h.handle(Failed(k("u"), "x", retryable=False))
    assert plan.changes[1] == Change(
        k("m"),
        S.NONE,
        S.FAILED,
        0,
        "upstream task 'u' did not succeed, so it has no output to map over",
    )
    assert plan.run_state is RUN_FAILED


@pytest.mark.parametrize(
    ("outcomes", "rule", "count"),
    [
        (("ok", "ok", "ok"), T.ALL_SUCCESS, 3),
        (("ok", "fail", "ok"), T.ALL_DONE, 2),
        (("ok", "skip", "ok"), T.NONE_FAILED, 2),
        (("skip", "ok", "fail"), T.ALL_DONE, 1),
        (("skip", "skip", "fail"), T.ALL_DONE, 0),
    ],
)
def test_mapping_over_a_mapped_upstream_counts_its_successful_instances(
    outcomes: tuple[str, str, str], rule: TriggerRule, count: int
) -> None:
    h = Harness(
        [
            spec("m", map_sources=literal(3)),
            spec("n", "m", trigger_rule=rule, map_sources=over("m")),
        ]
    )
    h.start()
    for i, outcome in enumerate(outcomes):
        h.handle(OUTCOMES[outcome](k(f"m[{i}]")))
    if count:
        assert h.expansions == [Expansion("m", 3), Expansion("n", count)]
        assert h.planner.keys("n") == [k(f"n[{i}]") for i in range(count)]
        assert all(h.planner.state_of(key) is S.QUEUED for key in h.planner.keys("n"))
    else:
        assert h.expansions == [Expansion("m", 3)]
        assert h.states("n") == {"n": S.SKIPPED}


def test_mapping_over_a_mapped_upstream_never_uses_a_partial_count() -> None:
    h = Harness(
        [
            spec("m", map_sources=literal(3)),
            spec("n", "m", trigger_rule=T.ONE_SUCCESS, map_sources=over("m")),
        ]
    )
    h.start()
    for i in range(3):
        h.handle(Succeeded(k(f"m[{i}]")))
    assert [e for e in h.expansions if e.task_id == "n" and e.count != 3] == []


@pytest.mark.parametrize(
    ("lengths", "count"),
    [((2, 3), 6), ((5, 2), 10), ((1, 7), 7), ((3, 0), 0), ((0, 4), 0)],
)
def test_cross_product_of_a_literal_and_an_upstream(lengths: tuple[int, int], count: int) -> None:
    sources = (MapSource("a", literal_length=lengths[0]), MapSource("b", upstream="u"))
    h = Harness([spec("u"), spec("m", "u", map_sources=sources)])
    h.start()
    plan = h.handle(Succeeded(k("u"), output_length=lengths[1]))
    if count:
        assert plan.expansions == [Expansion("m", count)]
        assert plan.to_start == [k(f"m[{i}]") for i in range(count)]
    else:
        assert plan.expansions == []
        assert h.states("m") == {"m": S.SKIPPED}
    h.finish_all()
    assert h.planner.run_state is RUN_OK


def test_cross_product_of_two_upstreams_waits_for_both() -> None:
    sources = (MapSource("a", upstream="u"), MapSource("b", upstream="v"))
    h = Harness([spec("u"), spec("v"), spec("m", "u", "v", map_sources=sources), spec("d", "m")])
    h.start()
    plan = h.handle(Succeeded(k("v"), output_length=5))
    assert plan.expansions == []
    assert h.planner.keys("m") == [k("m")]
    plan = h.handle(Succeeded(k("u"), output_length=2))
    assert plan.expansions == [Expansion("m", 10)]
    assert len(plan.to_start) == 10
    h.finish_all()
    assert h.started[-1] == k("d")
    assert h.planner.counts() == {S.SUCCESS: 13}
    assert h.planner.run_state is RUN_OK


def test_mapped_instances_retry_independently() -> None:
    h = Harness([spec("m", map_sources=literal(2), retry=RetryPolicy(retries=1, delay=5.0))])
    h.start(0.0)
    h.handle(Failed(k("m[0]"), "e"), Succeeded(k("m[1]")), now=0.0)
    plan = h.tick(5.0)
    assert plan.to_start == [k("m[0]")]
    assert h.planner.try_number(k("m[0]")) == 2
    assert h.planner.try_number(k("m[1]")) == 1
    plan = h.handle(Succeeded(k("m[0]")), now=6.0)
    assert plan.run_state is RUN_OK


# -- pools and capacity -------------------------------------------------------------------


def test_pool_of_two_slots_admits_at_most_two() -> None:
    h = Harness([spec(f"t{i}", pool="p") for i in range(5)], pools={DEFAULT_POOL: 100, "p": 2})
    plan = h.start()
    assert plan.to_start == [k("t0"), k("t1")]
    assert h.ledger.used("p") == 2
    assert [h.state(f"t{i}") for i in range(2, 5)] == [S.SCHEDULED] * 3
    plan = h.handle(Started(k("t0")))
    assert plan.to_start == []
    plan = h.handle(Succeeded(k("t1")))
    assert plan.to_start == [k("t2")]
    h.finish_all()
    assert h.started == [k(f"t{i}") for i in range(5)]
    assert h.peak_used["p"] == 2
    assert h.ledger.used("p") == 0
    assert h.planner.run_state is RUN_OK


@pytest.mark.parametrize("outcome", ["fail", "skip"])
def test_failing_or_skipping_frees_the_pool_slot(outcome: str) -> None:
    h = Harness([spec("a", pool="p"), spec("b", pool="p")], pools={DEFAULT_POOL: 1, "p": 1})
    h.start()
    plan = h.handle(OUTCOMES[outcome](k("a")))
    assert plan.to_start == [k("b")]
    assert h.ledger.used("p") == 1


def test_pool_slots_greater_than_one() -> None:
    h = Harness(
        [
            spec("a", pool="p", pool_slots=2),
            spec("b", pool="p", pool_slots=2),
            spec("c", pool="p", pool_slots=2),
            spec("d", pool="p", pool_slots=1),
            spec("e", pool="p", pool_slots=4),
        ],
        pools={DEFAULT_POOL: 1, "p": 4},
    )
    plan = h.start()
    assert plan.to_start == [k("a"), k("b")]
    assert h.ledger.used("p") == 4
    plan = h.handle(Succeeded(k("a")))
    assert plan.to_start == [k("c")]
    plan = h.handle(Succeeded(k("b")))
    assert plan.to_start == [k("d")]
    assert h.ledger.used("p") == 3
    plan = h.handle(Succeeded(k("c")))
    assert plan.to_start == []  # e needs the whole pool
    plan = h.handle(Succeeded(k("d")))
    assert plan.to_start == [k("e")]
    assert h.ledger.used("p") == 4
    h.finish_all()
    assert h.peak_used["p"] == 4
    assert h.ledger.used("p") == 0


def test_a_full_pool_does_not_block_another_pool() -> None:
    h = Harness(
        [
            spec("a1", pool="p1", priority_weight=10),
            spec("b1", pool="p1", priority_weight=10),
            spec("c1", pool="p1", priority_weight=10),
            spec("a2", pool="p2", priority_weight=1),
            spec("b2", pool="p2", priority_weight=1),
        ],
        pools={DEFAULT_POOL: 1, "p1": 1, "p2": 1},
    )
    plan = h.start()
    assert plan.to_start == [k("a1"), k("a2")]
    plan = h.handle(Succeeded(k("a2")))
    assert plan.to_start == [k("b2")]  # p1 still full, p2 goes on
    plan = h.handle(Succeeded(k("b2")))
    assert plan.to_start == []
    assert h.states("b1", "c1") == {"b1": S.SCHEDULED, "c1": S.SCHEDULED}
    plan = h.handle(Succeeded(k("a1")))
    assert plan.to_start == [k("b1")]
    h.finish_all()
    assert h.peak_used == {DEFAULT_POOL: 0, "p1": 1, "p2": 1}
    assert h.planner.run_state is RUN_OK


def test_the_pool_ledger_is_shared_between_runs() -> None:
    ledger = PoolLedger({DEFAULT_POOL: 10, "p": 1})
    first = Harness([spec("a", pool="p")], ledger=ledger)
    second = Harness([spec("a", pool="p")], ledger=ledger)
    assert first.start(0.0).to_start == [k("a")]
    assert second.start(0.0).to_start == []
    assert second.state("a") is S.SCHEDULED
    first.handle(Succeeded(k("a")))
    assert ledger.used("p") == 0
    assert second.tick(1.0).to_start == [k("a")]
    assert ledger.used("p") == 1


@pytest.mark.parametrize(("max_active", "n"), [(1, 4), (2, 5), (3, 3), (7, 20)])
def test_max_active_tasks_caps_admission(max_active: int, n: int) -> None:
    h = Harness([spec(f"t{i:02}") for i in range(n)], max_active=max_active)
    plan = h.start()
    assert plan.to_start == [k(f"t{i:02}") for i in range(min(max_active, n))]
    plan = h.handle(Started(k("t00")))
    assert plan.to_start == []
    h.finish_all()
    assert h.peak_active == min(max_active, n)
    assert h.started == [k(f"t{i:02}") for i in range(n)]
    assert h.planner.run_state is RUN_OK


def test_max_active_tasks_applies_across_pools() -> None:
    h = Harness(
        [spec("a", pool="p1"), spec("b", pool="p2"), spec("c", pool="p1"), spec("d", pool="p2")],
        pools={DEFAULT_POOL: 1, "p1": 5, "p2": 5},
        max_active=3,
    )
    assert h.start().to_start == [k("a"), k("b"), k("c")]
    assert h.handle(Succeeded(k("c"))).to_start == [k("d")]


@pytest.mark.parametrize(
    ("weights", "order"),
    [
        ((1, 5, 3, 5, 1), (1, 3, 2, 0, 4)),
        ((2, 2, 2), (0, 1, 2)),
        ((-1, 0, 1), (2, 1, 0)),
        ((1, 100, 1, 100, 50), (1, 3, 4, 0, 2)),
        ((9, 8, 7, 6), (0, 1, 2, 3)),
    ],
)
def test_priority_weight_orders_admission_fifo_among_equals(
    weights: tuple[int, ...], order: tuple[int, ...]
) -> None:
    h = Harness([spec(f"t{i}", priority_weight=w) for i, w in enumerate(weights)], max_active=1)
    h.start()
    h.finish_all()
    assert h.started == [k(f"t{i}") for i in order]


def test_fifo_among_equals_follows_scheduling_order_not_names() -> None:
    h = Harness([spec("z"), spec("y"), spec("x")], max_active=1)
    h.start()
    h.finish_all()
    assert h.started == [k("z"), k("y"), k("x")]


def test_a_later_scheduled_higher_priority_task_overtakes() -> None:
    h = Harness(
        [spec("g"), spec("h", "g", priority_weight=10), spec("l1"), spec("l2")], max_active=1
    )
    h.start()
    h.finish_all()
    assert h.started == [k("g"), k("h"), k("l1"), k("l2")]


def test_priority_decides_across_pools() -> None:
    h = Harness(
        [
            spec("a", pool="p1", priority_weight=1),
            spec("b", pool="p2", priority_weight=5),
            spec("c", pool="p1", priority_weight=3),
        ],
        pools={DEFAULT_POOL: 1, "p1": 5, "p2": 5},
        max_active=1,
    )
    h.start()
    h.finish_all()
    assert h.started == [k("b"), k("c"), k("a")]


# -- abort --------------------------------------------------------------------------------


def test_abort() -> None:
    ledger = PoolLedger({DEFAULT_POOL: 10, "p": 1})
    ledger.acquire("p", 1)  # another run holds the only slot of p
    h = Harness(
        [
            spec("done"),
            spec("waiting", pool="p"),  # scheduled, no slot
            spec("after_waiting", "waiting"),
            spec("retrying", retry=RetryPolicy(retries=3, delay=60.0)),
            spec("after_retrying", "retrying"),
        ],
        ledger=ledger,
    )
    assert h.start(0.0).to_start == [k("done"), k("retrying")]
    h.handle(Succeeded(k("done")), now=1.0)
    plan = h.handle(Failed(k("retrying"), "flaky"), now=2.0)
    assert plan.wake_at == 62.0
    assert h.states("waiting", "retrying") == {"waiting": S.SCHEDULED, "retrying": S.UP_FOR_RETRY}

    plan = h.planner.abort("scheduler shutting down")
    assert plan.changes == [
        Change(k("waiting"), S.SCHEDULED, S.FAILED, 0, "scheduler shutting down"),
        Change(k("retrying"), S.UP_FOR_RETRY, S.FAILED, 1, "scheduler shutting down"),
    ]
    assert plan.to_start == []
    assert plan.run_state is RUN_FAILED
    assert plan.wake_at is None
    assert h.planner.run_state is RUN_FAILED
    assert h.planner.finished
    assert h.states("done", "waiting", "after_waiting", "retrying", "after_retrying") == {
        "done": S.SUCCESS,
        "waiting": S.FAILED,
        "after_waiting": S.NONE,  # never had its dependencies met: stays none
        "retrying": S.FAILED,
        "after_retrying": S.NONE,
    }

    # Nothing more is admitted or released, even once the slot is free and time passes.
    ledger.release("p", 1)
    for now in (10.0, 62.0, 1000.0):
        plan = h.tick(now)
        assert not plan
        assert plan.wake_at is None  # the pending retry is forgotten
    assert ledger.used("p") == 0
    # A second abort changes nothing.
    again = h.planner.abort("again")
    assert not again
    assert h.planner.run_state is RUN_FAILED


def test_abort_after_reporting_the_running_ones_failed() -> None:
    h = Harness([spec("a"), spec("b"), spec("c", "a")], max_active=1)
    h.start()
    assert h.state("b") is S.SCHEDULED
    h.planner.abort("shutdown")
    plan = h.handle(Failed(k("a"), "killed", retryable=False))
    assert changes(plan) == ["a:queued->failed"]  # c is not evaluated any more
    assert plan.to_start == []
    assert plan.run_state is None  # already reported by abort
    assert h.states("a", "b", "c") == {"a": S.FAILED, "b": S.FAILED, "c": S.NONE}
    assert h.ledger.used(DEFAULT_POOL) == 0


def test_abort_of_a_finished_run_keeps_its_state() -> None:
    h = Harness([spec("a")])
    h.start()
    h.handle(Succeeded(k("a")))
    plan = h.planner.abort("late")
    assert not plan
    assert h.planner.run_state is RUN_OK


def test_hold_processes_events_but_starts_nothing_more() -> None:
    h = Harness(
        [
            spec("a"),
            spec("b"),
            spec("after_a", "a"),
            spec("r", retry=RetryPolicy(retries=1, delay=5.0)),
        ],
        max_active=3,
    )
    h.start(0.0)
    assert h.started == [k("a"), k("b"), k("r")]
    assert h.planner.active == 3
    h.planner.hold()
    plan = h.handle(Succeeded(k("a")), Failed(k("r"), "e"), now=1.0)
    assert changes(plan) == [
        # Events are applied first, then the tasks they affect are evaluated.
        "a:queued->success",
        "r:queued->up_for_retry",
        "after_a:none->scheduled",
    ]
    assert plan.to_start == []
    assert plan.wake_at == 6.0
    assert h.planner.active == 1
    plan = h.tick(6.0)  # the retry is released but not started
    assert changes(plan) == ["r:up_for_retry->scheduled"]
    assert plan.to_start == []
    plan = h.handle(Succeeded(k("b")), now=7.0)
    assert changes(plan) == ["b:queued->success"]
    assert plan.run_state is None
    assert h.planner.active == 0
    assert h.ledger.used(DEFAULT_POOL) == 0
    plan = h.planner.abort("shutdown")
    assert changes(plan) == ["after_a:scheduled->failed", "r:scheduled->failed"]
    assert plan.run_state is RUN_FAILED


def test_active_counts_queued_and_running_instances() -> None:
    h = Harness([spec("a"), spec("b"), spec("c", "a")])
    assert h.planner.active == 0
    h.start()
    assert h.planner.active == 2
    h.handle(Started(k("a")))
    assert h.planner.active == 2
    h.handle(Succeeded(k("a")))
    assert h.planner.active == 2  # a done, c queued
    h.handle(Skipped(k("b")), Succeeded(k("c")))
    assert h.planner.active == 0


# -- scale --------------------------------------------------------------------------------


def test_large_fan_out_completes() -> None:
    n = 10_000
    h = Harness(
        [spec("root"), *(spec(f"t{i}", "root") for i in range(n))],
        pools={DEFAULT_POOL: 128},
        max_active=64,
    )
    h.start()
    h.finish_all()
    assert h.planner.run_state is RUN_OK
    assert h.planner.counts() == {S.SUCCESS: n + 1}
    assert len(h.started) == n + 1
    assert h.started[:3] == [k("root"), k("t0"), k("t1")]
    assert h.peak_active == 64
    assert h.ledger.used(DEFAULT_POOL) == 0


def test_large_mapped_fan_out_completes() -> None:
    n = 10_000
    h = Harness(
        [spec("u"), spec("m", "u", map_sources=over("u")), spec("d", "m")],
        pools={DEFAULT_POOL: 128},
        max_active=100,
    )
    h.start()
    h.handle(Succeeded(k("u"), output_length=n))
    h.finish_all()
    assert h.planner.run_state is RUN_OK
    assert h.planner.counts() == {S.SUCCESS: n + 2}
    assert h.started[-1] == k("d")
    assert h.peak_active == 100


@pytest.mark.parametrize("outcome", ["fail", "skip"])
def test_deep_chain_propagation(outcome: str) -> None:
    n = 1_000
    h = Harness([spec("t0"), *(spec(f"t{i}", f"t{i - 1}") for i in range(1, n))])
    h.start()
    plan = h.handle(OUTCOMES[outcome](k("t0")))
    assert len(plan.changes) == n
    assert plan.run_state is (RUN_FAILED if outcome == "fail" else RUN_OK)


def _events_for(keys: Iterable[TIKey]) -> list[Event]:
    return [Succeeded(key) for key in keys]


def test_many_independent_tasks_in_one_batch() -> None:
    n = 2_000
    h = Harness([spec(f"t{i}") for i in range(n)])
    plan = h.start()
    assert len(plan.to_start) == n
    plan = h.handle(*_events_for(plan.to_start))
    assert plan.run_state is RUN_OK


# -- stimulus ids and stories (ADR 0017) -------------------------------------------------


def test_changes_carry_the_id_of_the_report_that_caused_them_even_downstream() -> None:
    h = Harness([spec("a"), spec("b", "a"), spec("c", "b"), spec("d")])
    h.start()
    plan = h.handle(Failed(k("a"), "broke", retryable=False, stimulus_id="finished-a"))
    assert [(str(c.key), c.new, c.stimulus_id) for c in plan.changes] == [
        ("a", S.FAILED, "finished-a"),
        ("b", S.UPSTREAM_FAILED, "finished-a"),
        ("c", S.UPSTREAM_FAILED, "finished-a"),
    ]
    plan = h.handle(Succeeded(k("d"), stimulus_id="finished-d"), stimulus_id="tick-x")
    assert [(str(c.key), c.stimulus_id) for c in plan.changes] == [("d", "finished-d")]


def test_admissions_and_released_retries_carry_the_tick_id() -> None:
    h = Harness([spec("a", retry=RetryPolicy(retries=1, delay=5.0)), spec("b")], max_active=1)
    h.start()
    plan = h.handle(Failed(k("a"), "flaky", stimulus_id="finished-a"), stimulus_id="tick-1")
    assert [(str(c.key), c.new, c.stimulus_id) for c in plan.changes] == [
        ("a", S.UP_FOR_RETRY, "finished-a"),
        ("b", S.QUEUED, "tick-1"),
    ]
    h.handle(Succeeded(k("b")), now=6.0, stimulus_id="tick-2")
    assert [c.stimulus_id for c in h.plans[-1].changes if c.key == k("a")] == ["tick-2", "tick-2"]


def test_an_impossible_transition_names_its_stimulus_and_the_instance_story() -> None:
    h = Harness([spec("a")])
    h.start()
    h.handle(Started(k("a"), stimulus_id="started-1"))
    h.handle(Succeeded(k("a"), stimulus_id="finished-1"))
    with pytest.raises(InvalidTransition) as caught:
        h.planner.handle([Started(k("a"), stimulus_id="started-late")], 0.0)
    message = str(caught.value)
    assert message.startswith("task instance a: illegal transition success -> running")
    assert "asked by started-late" in message
    story = [(old, new, sid) for old, new, sid in h.planner.story(k("a"))]
    assert [(old, new) for old, new, _ in story] == [
        (S.NONE, S.SCHEDULED),
        (S.SCHEDULED, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.SUCCESS),
    ]
    assert story[2][2] == "started-1"
    assert story[3][2] == "finished-1"
    assert "running -> success (finished-1)" in message
