"""The engine's garbage-collector policy (ADR 0044), through real runs on SQLite.

The collector is process-wide: every test puts the thresholds it found back and
leaves nothing frozen (the ``_collector`` fixture checks both).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, task
from airloop.engine.engine import Engine
from airloop.engine.gc_policy import RUN_THRESHOLDS
from airloop.settings import Settings

#: Thresholds an embedding program might have set: none of the policy's, nor CPython's.
PROGRAM_THRESHOLDS = (900, 11, 12)


@pytest.fixture(autouse=True)
def _collector() -> Iterator[None]:
    found = gc.get_threshold()
    gc.set_threshold(*PROGRAM_THRESHOLDS)
    assert gc.get_freeze_count() == 0
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*found)


class Node:
    """A weak-referenceable object to make reference cycles of."""

    def __init__(self) -> None:
        self.other: Any = None


def cycle() -> weakref.ref[Node]:
    """Two nodes in a cycle, no other reference: only the cyclic GC can free them."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def observing_dag(dag_id: str, seen: list[tuple[tuple[int, int, int], int]]) -> DAG:
    """A DAG whose one task records the collector's thresholds and freeze count."""
    with DAG(dag_id) as dag:

        @task
        def look() -> None:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))

        look()
    return dag


async def test_thresholds_raised_during_a_run_and_restored_after(tmp_path: Path) -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    async with Engine(Settings(home=tmp_path)) as engine:
        assert gc.get_threshold() == PROGRAM_THRESHOLDS  # no run yet
        result = await engine.run(observing_dag("gc_on", seen))
        assert result.counts == {"success": 1}
    [(during, frozen)] = seen
    assert during == RUN_THRESHOLDS
    assert frozen > 0  # the DAG, its specs and the planner were frozen
    assert gc.get_threshold() == PROGRAM_THRESHOLDS
    assert gc.get_freeze_count() == 0


async def test_the_setting_off_leaves_the_collector_alone(tmp_path: Path) -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    async with Engine(Settings(home=tmp_path, gc_policy=False)) as engine:
        await engine.run(observing_dag("gc_off", seen))
    assert seen == [(PROGRAM_THRESHOLDS, 0)]
    assert gc.get_threshold() == PROGRAM_THRESHOLDS


async def test_thresholds_restored_when_a_run_fails_to_start(tmp_path: Path) -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    async with Engine(Settings(home=tmp_path)) as engine:
        dag = observing_dag("gc_dup", seen)
        await engine.run(dag, run_id="r1")
        with pytest.raises(Exception, match="already has a run"):
            await engine.start_run(dag, run_id="r1")
        assert gc.get_threshold() == PROGRAM_THRESHOLDS  # no run active
    assert gc.get_threshold() == PROGRAM_THRESHOLDS


async def test_two_engines_restore_once_both_are_idle(tmp_path: Path) -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    async with Engine(Settings(home=tmp_path / "a")) as first:
        async with Engine(Settings(home=tmp_path / "b")) as second:
            run = await first.start_run(observing_dag("gc_first", seen))
            await second.run(observing_dag("gc_second", seen))
            await run.done
        # The inner engine stopped while the outer one still served: nothing unfrozen
        # under it, thresholds already back (no run active).
        assert gc.get_threshold() == PROGRAM_THRESHOLDS
    assert [t for t, _ in seen] == [RUN_THRESHOLDS, RUN_THRESHOLDS]
    assert gc.get_threshold() == PROGRAM_THRESHOLDS
    assert gc.get_freeze_count() == 0


async def test_garbage_cycles_made_by_tasks_are_collected(tmp_path: Path) -> None:
    """Many tasks each leave a garbage cycle behind; a cycle frozen at the run's start
    becomes garbage during it. All are freed by the engine's stop at the latest."""
    made: list[weakref.ref[Node]] = []
    held = [Node()]
    held[0].other = held[0]  # a cycle alive (referenced) when the run starts
    frozen_then_dropped = weakref.ref(held[0])

    with DAG("gc_cycles") as dag:

        @task
        def leave_cycles(i: int) -> int:
            for _ in range(50):
                made.append(cycle())
            held.clear()  # the frozen cycle becomes garbage
            return i

        leave_cycles.expand(i=list(range(200)))

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.counts == {"success": 200}
    assert len(made) == 200 * 50
    assert frozen_then_dropped() is None
    assert sum(1 for ref in made if ref() is not None) == 0


async def test_a_program_that_froze_objects_keeps_them_frozen(tmp_path: Path) -> None:
    gc.collect()
    gc.freeze()
    before = gc.get_freeze_count()
    seen: list[tuple[tuple[int, int, int], int]] = []
    async with Engine(Settings(home=tmp_path)) as engine:
        await engine.run(observing_dag("gc_program_froze", seen))
    [(during, _)] = seen
    assert during == RUN_THRESHOLDS  # the thresholds are still raised during runs
    # Neither unfrozen (the program's objects stay frozen) nor frozen by the policy:
    # only what the program froze, less what was freed since.
    assert 0 < gc.get_freeze_count() <= before
    assert gc.get_threshold() == PROGRAM_THRESHOLDS
