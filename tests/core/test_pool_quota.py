"""Pools shared by several schedulers (ADR 0041): the share policy
(``decide_share``), the ledger's shares, and what an engine reports (slots in use,
slots waited for). Pure: no database, no event loop."""

from __future__ import annotations

import random
from math import floor

import pytest

from airloop.core.admission import Admission
from airloop.core.plan import StoredTI
from airloop.core.planner import RunPlanner
from airloop.core.pool_quota import Quota, Share, decide_share, fair_split
from airloop.core.pools import PoolError, PoolLedger, PoolUse
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import TaskState as S
from airloop.core.stimuli import Succeeded

# -- the policy ------------------------------------------------------------------------


def test_a_scheduler_alone_gets_everything_it_wants() -> None:
    assert decide_share(5, 0, 9, [], live=1, scheduler_id=1) == Share(slots=5, grant=5)
    assert decide_share(5, 2, 1, [], live=1, scheduler_id=1) == Share(
        slots=5, grant=5
    )  # headroom: all


def test_the_fair_part_of_a_big_pool_is_taken_up_front() -> None:
    # Three live schedulers, nobody uses the default pool yet: each takes a third
    # before any task wants it, and the last one what is left.
    a = decide_share(100_000, 0, 0, [], live=3, scheduler_id=1)
    assert a == Share(33_334, 33_334)
    b = decide_share(100_000, 0, 0, [Quota(33_334, 0, 0)], live=3, scheduler_id=1)
    c = decide_share(
        100_000, 0, 0, [Quota(33_334, 0, 0), Quota(b.slots, 0, 0)], live=3, scheduler_id=1
    )
    assert (b.grant, c.grant) == (33_334, 33_332)


def test_idle_headroom_is_given_up_when_another_waits() -> None:
    # This scheduler holds the whole pool idle; another reports it waits for 3.
    assert decide_share(5, 0, 0, [Quota(0, 0, 3, 2)], live=2, scheduler_id=1) == Share(0, 0)
    # The waiting one, once the other shrank, takes what it wants plus headroom.
    assert decide_share(5, 0, 3, [Quota(0, 0, 0, 2)], live=2, scheduler_id=1) == Share(3, 3)


def test_above_the_fair_share_while_others_wait_keeps_its_use_and_admits_nothing() -> None:
    share = decide_share(5, 5, 5, [Quota(0, 0, 10, 2)], live=2, scheduler_id=1)
    assert share == Share(slots=5, grant=3)  # fair: 3 of 5 (lower id); its five still run
    # As its task instances finish, what it records comes down to the fair share.
    assert decide_share(5, 3, 5, [Quota(0, 0, 10, 2)], live=2, scheduler_id=1) == Share(3, 3)


def test_use_past_what_is_free_is_recorded_and_nothing_more_is_admitted() -> None:
    # E.g. Batch jobs adopted from a dead scheduler while the others hold the pool.
    share = decide_share(5, 4, 2, [Quota(3, 3, 0, 2)], live=2, scheduler_id=1)
    assert share == Share(slots=4, grant=2)  # the sum is 7 > 5 until its use drops


def test_free_slots_the_waiting_others_cannot_claim_are_not_left_idle() -> None:
    # Pool of 10: the other waits for 1 more (its fair share is 5, it wants 3).
    share = decide_share(10, 0, 9, [Quota(2, 2, 1, 2)], live=2, scheduler_id=1)
    assert share == Share(7, 7)  # 10 - 2 held - 1 reserved for the other


def test_a_shrunk_pool_grants_nothing_until_the_use_is_back_under_it() -> None:
    assert decide_share(2, 1, 0, [Quota(3, 3, 0, 2)], live=2, scheduler_id=1) == Share(
        slots=1, grant=0
    )


class Sim:
    """Schedulers calling in random order, each admitting up to its grant and its
    task instances finishing at random, as the store and the engine do."""

    def __init__(self, size: int, wants: list[int], seed: int) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.want = wants
        n = len(wants)
        self.rows = [Quota(0, 0, 0, i) for i in range(n)]
        self.grant = [0] * n
        self.used = [0] * n

    def call(self, i: int) -> None:
        others = [r for j, r in enumerate(self.rows) if j != i]
        waiting = max(0, self.want[i] - self.used[i])
        share = decide_share(
            self.size, self.used[i], waiting, others, len(self.rows), scheduler_id=i
        )
        self.grant[i] = share.grant
        self.admit(i)
        self.rows[i] = Quota(share.slots, self.used[i], max(0, self.want[i] - self.used[i]), i)

    def admit(self, i: int) -> None:
        while self.used[i] < min(self.grant[i], self.want[i]):
            self.used[i] += 1

    def step(self) -> None:
        i = self.rng.randrange(len(self.rows))
        if self.used[i] and self.rng.random() < 0.5:
            self.used[i] -= 1  # a task instance finished: the next one may start
            self.admit(i)
        self.call(self.rng.randrange(len(self.rows)))

    def check(self) -> None:
        assert sum(r.slots for r in self.rows) <= self.size
        assert sum(self.used) <= self.size
        for row, used in zip(self.rows, self.used, strict=True):
            assert used <= row.slots


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("size", "wants"), [(5, [9, 9, 9]), (3, [4, 1]), (10, [0, 20, 3, 7])])
def test_shares_never_exceed_the_pool_and_every_waiter_gets_its_fair_share(
    seed: int, size: int, wants: list[int]
) -> None:
    sim = Sim(size, wants, seed)
    for _ in range(300):
        sim.step()
        sim.check()
    # Then a few rounds in which the task instances keep running to completion:
    # every scheduler that wants slots ends with at least the floor of the fair share.
    for _ in range(20):
        for i in range(len(wants)):
            sim.used[i] = max(0, sim.used[i] - 1)
            sim.call(i)
            sim.check()
    wanting = sum(1 for w in wants if w)
    for want, used in zip(wants, sim.used, strict=True):
        assert used >= min(want, floor(size / wanting))


def test_no_competition_converges_to_everything_wanted() -> None:
    sim = Sim(5, [5, 0, 0], seed=1)
    for i in (1, 2, 0, 1, 2, 0):  # the idle ones take headroom first, then yield
        sim.call(i)
        sim.check()
    assert sim.used == [5, 0, 0]


def test_the_fair_split_gives_what_is_not_wanted_to_the_others() -> None:
    assert fair_split(10, {1: 20, 2: 3, 3: 7}) == {2: 3, 1: 4, 3: 3}
    assert fair_split(5, {1: 9, 2: 9, 3: 9}) == {1: 2, 2: 2, 3: 1}
    assert fair_split(5, {4: 1, 9: 1}) == {4: 1, 9: 1}
    assert fair_split(0, {1: 3}) == {1: 0}


# -- the ledger's shares --------------------------------------------------------------


def test_a_share_caps_admission_but_not_which_tasks_could_ever_run() -> None:
    ledger = PoolLedger({"default_pool": 10, "p": 3})
    ledger.resize({"default_pool": 10, "p": 3}, {"default_pool": 4})
    assert (ledger.free("default_pool"), ledger.free("p")) == (4, 0)
    ledger.check("t", "p", 3)  # waits for a share; not refused
    with pytest.raises(PoolError, match="could never run"):
        ledger.check("t", "p", 4)
    assert ledger.shares == {"default_pool": 4}
    ledger.resize({"default_pool": 10, "p": 3})  # one scheduler again: all of it
    assert ledger.free("p") == 3
    assert ledger.shares is None


def test_a_negative_share_is_refused() -> None:
    with pytest.raises(PoolError, match="negative share"):
        PoolLedger({"p": 1}).resize({"p": 1}, {"p": -1})


def test_a_restored_running_instance_waits_for_a_share_without_failing() -> None:
    # A scheduler adopting runs whose share is still 0: the resumable try goes back
    # to scheduled under the same try (it re-attaches once admitted) instead of the
    # ledger refusing the slot it held.
    admission = Admission({"default_pool": 1})
    admission.pools.resize({"default_pool": 1}, {"default_pool": 0})
    p = RunPlanner(
        [TaskSpec("a"), TaskSpec("b")],
        admission=admission,
        max_active_tasks=admission.dag_limit("d", 10),
    )
    plan = p.restore([StoredTI(TIKey("a"), S.RUNNING, 1, resumable=True)], {}, 0.0)
    assert plan.to_start == []
    assert (p.state_of(TIKey("a")), p.try_number(TIKey("a"))) == (S.SCHEDULED, 1)
    # The resuming try counts as in use (its work may be running), b waits.
    assert admission.pool_usage()["default_pool"] == PoolUse(1, 1)


def test_a_resuming_try_goes_before_any_new_start_of_any_run() -> None:
    admission = Admission({"default_pool": 10, "p": 1})
    new = planner(admission, "new", TaskSpec("urgent", pool="p", priority_weight=1000))
    adopted = planner(admission, "adopted", TaskSpec("job", pool="p"))
    admission.pools.resize({"default_pool": 10, "p": 1}, {"default_pool": 10, "p": 0})
    new.start(0.0)
    adopted.restore([StoredTI(TIKey("job"), S.RUNNING, 3, resumable=True)], {}, 0.0)
    assert admission.pool_usage()["p"] == PoolUse(1, 1)
    admission.pools.resize({"default_pool": 10, "p": 1}, {"default_pool": 10, "p": 1})
    admission.admit()
    assert adopted.take_admitted().to_start == [TIKey("job")]
    assert new.take_admitted().to_start == []
    assert adopted.try_number(TIKey("job")) == 3
    assert admission.pool_usage()["p"] == PoolUse(1, 1)


# -- what the engine reports ----------------------------------------------------------


def planner(admission: Admission, dag_id: str, *specs: TaskSpec, limit: int = 100) -> RunPlanner:
    return RunPlanner(
        specs, admission=admission, max_active_tasks=admission.dag_limit(dag_id, limit)
    )


def test_pool_usage_counts_slots_held_and_slots_waited_for() -> None:
    admission = Admission({"default_pool": 100, "p": 3})
    a = planner(
        admission,
        "a",
        TaskSpec("x", pool="p", pool_slots=2),
        TaskSpec("y", pool="p", pool_slots=2),
        TaskSpec("z"),
    )
    b = planner(admission, "b", TaskSpec("w", pool="p"))
    a.start(0.0)
    b.start(0.0)
    usage = admission.pool_usage()
    # x (2 slots) and w (1) run; y (2) waits for a slot of p.
    assert usage == {"default_pool": PoolUse(1, 0), "p": PoolUse(3, 2)}
    assert admission.short_pools() == {"p"}


def test_waiting_instances_blocked_by_other_limits_are_not_reported() -> None:
    admission = Admission({"default_pool": 100, "p": 1})
    capped = planner(admission, "capped", TaskSpec("a"), TaskSpec("b", pool="p"), limit=1)
    capped.start(0.0)
    # b is ready but the DAG's max_active_tasks (1) is taken by a: it could not use
    # a slot of p if it had one.
    assert admission.pool_usage()["p"] == PoolUse(0, 0)
    assert admission.short_pools() == set()
    capped.handle([Succeeded(TIKey("a"))], 0.0)
    assert admission.pool_usage()["p"] == PoolUse(1, 0)


def test_a_share_of_zero_makes_the_pool_short_and_the_demand_visible() -> None:
    admission = Admission({"default_pool": 100, "p": 3})
    admission.pools.resize({"default_pool": 100, "p": 3}, {"default_pool": 100, "p": 0})
    p = planner(admission, "d", TaskSpec("a", pool="p", pool_slots=2), TaskSpec("b", pool="p"))
    assert p.start(0.0).to_start == []
    assert admission.pool_usage()["p"] == PoolUse(0, 3)
    assert admission.short_pools() == {"p"}
    admission.pools.resize({"default_pool": 100, "p": 3}, {"default_pool": 100, "p": 3})
    admission.admit()
    assert sorted(str(k) for k in p.take_admitted().to_start) == ["a", "b"]
    assert admission.pool_usage()["p"] == PoolUse(3, 0)
    assert admission.short_pools() == set()
