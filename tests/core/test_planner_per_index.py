"""Per-index upstreams (the planner's side of mapped task groups): instance i of an
inner task waits only for instance i of the inner tasks before it."""

from __future__ import annotations

import pytest

from airloop.core.plan import PlanningError, StoredTI
from airloop.core.planner import RunPlanner
from airloop.core.pools import DEFAULT_POOL, PoolLedger
from airloop.core.specs import MapSource, TaskSpec, TIKey
from airloop.core.states import DagRunState
from airloop.core.states import TaskState as S
from airloop.core.stimuli import Started, Succeeded
from airloop.core.trigger_rules import TriggerRule

from .test_planner import Harness, fail, ok, spec


def i(task: str, index: int) -> TIKey:
    return TIKey(task, index)


def group(sources: tuple[MapSource, ...], *outside: str) -> list[TaskSpec]:
    """a -> b inside a mapped group over ``sources``; c after the group."""
    ups = tuple(s for src in sources for s in src.upstreams)
    return [
        spec("a", *outside, *ups, map_sources=sources),
        spec("b", "a", *ups, map_sources=sources, per_index_upstream=("a",)),
        spec("c", "b"),
    ]


LITERAL = (MapSource("x", literal_length=3),)


def test_inner_instances_follow_their_own_index_only() -> None:
    h = Harness(group(LITERAL))
    plan = h.start()
    assert plan.to_start == [i("a", 0), i("a", 1), i("a", 2)]
    assert h.planner.state_of(i("b", 0)) is S.NONE
    plan = h.handle(Started(i("a", 0)), Started(i("a", 1)), ok(i("a", 1)))
    assert plan.to_start == [i("b", 1)]  # while a[0] still runs
    assert h.planner.state_of(i("b", 0)) is S.NONE
    h.handle(fail(i("a", 0)))
    assert h.planner.state_of(i("b", 0)) is S.UPSTREAM_FAILED
    h.handle(ok(i("b", 1)), ok(i("a", 2)))
    assert h.planner.state_of(i("b", 2)) is S.QUEUED
    assert h.state("c") is S.UPSTREAM_FAILED  # all_success: one index failed
    h.handle(ok(i("b", 2)))
    assert h.planner.run_state is DagRunState.FAILED
    h.planner.validate()


def test_a_group_over_an_upstream_output_expands_at_run_time() -> None:
    h = Harness([spec("src"), *group((MapSource("x", upstream="src"),))])
    assert h.start().to_start == [TIKey("src")]
    plan = h.handle(Succeeded(TIKey("src"), output_length=2))
    assert plan.to_start == [i("a", 0), i("a", 1)]
    assert [e.count for e in plan.expansions] == [2, 2]
    h.handle(ok(i("a", 0)), ok(i("a", 1)))
    h.handle(ok(i("b", 1)))
    assert h.state("c") is S.NONE  # waits for every instance of b
    h.finish_all()
    assert h.planner.run_state is DagRunState.SUCCESS
    assert h.states("a", "b", "c") == {
        "a[0]": S.SUCCESS,
        "a[1]": S.SUCCESS,
        "b[0]": S.SUCCESS,
        "b[1]": S.SUCCESS,
        "c": S.SUCCESS,
    }


def test_trigger_rules_hold_per_index() -> None:
    specs = group(LITERAL)
    specs[1] = spec(
        "b", "a", map_sources=LITERAL, per_index_upstream=("a",), trigger_rule=TriggerRule.ALL_DONE
    )
    h = Harness(specs)
    h.start()
    plan = h.handle(fail(i("a", 2)))
    assert plan.to_start == [i("b", 2)]


def test_an_empty_group_skips_every_inner_task() -> None:
    h = Harness([spec("src"), *group((MapSource("x", upstream="src"),))])
    h.start()
    h.handle(Succeeded(TIKey("src"), output_length=0))
    assert h.states("a", "b", "c") == {"a": S.SKIPPED, "b": S.SKIPPED, "c": S.SKIPPED}


def test_outside_upstreams_are_waited_for_by_every_instance() -> None:
    specs = [spec("x"), *group(LITERAL)]
    specs[2] = spec("b", "a", "x", map_sources=LITERAL, per_index_upstream=("a",))
    h = Harness(specs)
    h.start()
    h.handle(ok(i("a", 0)), ok(i("a", 1)), ok(i("a", 2)))
    assert h.state("b") is S.NONE  # not expanded before x is done
    plan = h.handle(ok(TIKey("x")))
    assert plan.to_start == [i("b", 0), i("b", 1), i("b", 2)]


@pytest.mark.parametrize(
    "bad",
    [
        spec("b", "a", map_sources=(MapSource("x", literal_length=2),), per_index_upstream=("a",)),
        spec("b", map_sources=LITERAL, per_index_upstream=("a",)),
        spec("b", "a", per_index_upstream=("a",)),
    ],
)
def test_per_index_upstreams_must_match(bad: TaskSpec) -> None:
    with pytest.raises(PlanningError, match="per-index upstream 'a'"):
        RunPlanner(
            [spec("a", map_sources=LITERAL), bad],
            pools=PoolLedger({DEFAULT_POOL: 10}),
            max_active_tasks=10,
        )


def test_restore_rebuilds_the_per_index_counters() -> None:
    p = RunPlanner(group(LITERAL), pools=PoolLedger({DEFAULT_POOL: 10}), max_active_tasks=10)
    plan = p.restore(
        [
            StoredTI(i("a", 0), S.FAILED, 1),
            StoredTI(i("a", 1), S.SUCCESS, 1),
            StoredTI(i("a", 2), S.RUNNING, 1, resumable=True),
            StoredTI(i("b", 0), S.NONE, 0),
            StoredTI(i("b", 1), S.NONE, 0),
            StoredTI(i("b", 2), S.NONE, 0),
            StoredTI(TIKey("c"), S.NONE, 0),
        ],
        {},
        now=1.0,
    )
    p.validate()
    assert p.state_of(i("b", 0)) is S.UPSTREAM_FAILED
    assert i("b", 1) in plan.to_start
    assert p.state_of(i("b", 2)) is S.NONE
    p.handle([Started(i("a", 2)), Succeeded(i("a", 2))], 2.0)
    assert p.state_of(i("b", 2)) is S.QUEUED
    p.validate()
