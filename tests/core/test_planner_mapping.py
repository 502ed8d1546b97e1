"""The planner's side of richer mapping: zipped sources' lengths and max_map_length."""

from __future__ import annotations

import random

import pytest

from airloop.core.plan import Change, Expansion, PlanningError
from airloop.core.planner import DEFAULT_MAX_MAP_LENGTH, RunPlanner
from airloop.core.pools import DEFAULT_POOL, PoolLedger
from airloop.core.specs import MapSource, TaskSpec, TIKey
from airloop.core.states import DagRunState, TaskState
from airloop.core.stimuli import Succeeded

from .test_planner import Harness, k, spec


def zipped(*upstreams: str, longest: bool = False) -> tuple[MapSource, ...]:
    return (MapSource("p", upstream=upstreams[0], zip_with=upstreams[1:], zip_longest=longest),)


@pytest.mark.parametrize(("longest", "count"), [(False, 2), (True, 5)])
def test_a_zip_is_as_long_as_its_shortest_or_longest_input(longest: bool, count: int) -> None:
    h = Harness(
        [spec("a"), spec("b"), spec("m", "a", "b", map_sources=zipped("a", "b", longest=longest))]
    )
    h.start()
    plan = h.handle(Succeeded(k("a"), output_length=5))
    assert plan.expansions == []  # b's length is not known yet
    plan = h.handle(Succeeded(k("b"), output_length=2))
    assert plan.expansions == [Expansion("m", count)]
    h.finish_all()
    assert h.planner.run_state is DagRunState.SUCCESS


def test_a_zip_over_a_mapped_input_counts_its_successful_instances() -> None:
    h = Harness(
        [
            spec("a", map_sources=(MapSource("x", literal_length=3),)),
            spec("b"),
            spec("m", "a", "b", map_sources=zipped("a", "b")),
        ]
    )
    h.start()
    h.handle(Succeeded(k("b"), output_length=10))
    h.finish_all()
    assert h.planner.keys("m") == [TIKey("m", i) for i in range(3)]


def test_zipped_upstreams_must_be_dependencies() -> None:
    with pytest.raises(PlanningError, match="maps over 'b' but does not depend on it"):
        RunPlanner(
            [spec("a"), spec("b"), spec("m", "a", map_sources=zipped("a", "b"))],
            pools=PoolLedger({DEFAULT_POOL: 8}),
            max_active_tasks=8,
        )


def planner(specs: list[TaskSpec], cap: int) -> RunPlanner:
    return RunPlanner(
        specs,
        pools=PoolLedger({DEFAULT_POOL: 8}),
        max_active_tasks=8,
        rng=random.Random(0),
        max_map_length=cap,
    )


def test_an_expansion_past_max_map_length_fails_the_mapped_task() -> None:
    over_u = (MapSource("x", upstream="u"),)
    p = planner([spec("u"), spec("m", "u", map_sources=over_u), spec("d", "m")], 4)
    assert p.start(0.0).to_start == [k("u")]
    plan = p.handle([Succeeded(k("u"), output_length=5)], 0.0)
    assert plan.expansions == []
    assert [(c.key, c.new) for c in plan.changes[1:]] == [
        (k("m"), TaskState.FAILED),
        (k("d"), TaskState.UPSTREAM_FAILED),
    ]
    assert "would expand to 5 task instances, more than max_map_length (4)" in str(
        plan.changes[1].reason
    )


def test_the_cap_counts_the_cross_product_and_allows_exactly_the_cap() -> None:
    sources = (MapSource("a", literal_length=2), MapSource("b", literal_length=3))
    plan = planner([spec("m", map_sources=sources)], 5).start(0.0)
    assert plan.expansions == []
    assert plan.changes[0] == Change(
        k("m"),
        TaskState.NONE,
        TaskState.FAILED,
        0,
        "task 'm' would expand to 6 task instances, more than max_map_length (5); "
        "raise the setting max_map_length or map over fewer elements",
    )
    assert plan.run_state is DagRunState.FAILED
    assert planner([spec("m", map_sources=sources)], 6).start(0.0).expansions == [Expansion("m", 6)]


def test_max_map_length_default_and_bounds() -> None:
    assert DEFAULT_MAX_MAP_LENGTH == 100_000
    with pytest.raises(PlanningError, match="max_map_length must be >= 1"):
        planner([spec("a")], 0)
