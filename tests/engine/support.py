"""Helpers shared by the engine integration tests (no mocks: they only read and wait)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from airloop.core.specs import TIKey
from airloop.core.states import TaskState
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine

#: States a task instance may be left in once its run is over.
SETTLED = {"success", "failed", "skipped", "upstream_failed", "removed", "none"}


async def ti_rows(engine: Engine, run_pk: int) -> dict[tuple[str, int], Any]:
    """The run's task_instance rows keyed by (task_id, map_index)."""
    rows = await engine.store.task_instances(run_pk)
    return {(row.task_id, row.map_index): row for row in rows}


async def ti_states(engine: Engine, run_pk: int) -> dict[str, str]:
    """``{"task": state, "task[0]": state, ...}`` straight from the database."""
    rows = await engine.store.task_instances(run_pk)
    return {
        (r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"): r.state for r in rows
    }


async def xcom_map(engine: Engine, run_pk: int) -> dict[tuple[str, int], str]:
    """The run's stored return values (raw JSON text) keyed by (task_id, map_index)."""
    rows = await engine.store.xcom_values(run_pk)
    return {(r.task_id, r.map_index): r.value for r in rows if r.key == "return_value"}


async def keyed_xcoms(engine: Engine, run_pk: int) -> dict[tuple[str, int, str], Any]:
    """Every stored XCom, decoded, keyed by (task_id, map_index, key)."""
    rows = await engine.store.xcom_values(run_pk)
    return {(r.task_id, r.map_index, r.key): json.loads(r.value) for r in rows}


def state_of(run: ActiveRun, task_id: str, map_index: int = -1) -> TaskState | None:
    """The scheduler's view of one task instance (None while it does not exist)."""
    return run.state_of(TIKey(task_id, map_index))


async def wait_until(
    engine: Engine, run: ActiveRun, predicate: Callable[[ActiveRun], bool], within: float = 20
) -> None:
    """Wait (event-driven: checked after every scheduler tick) until ``predicate(run)``."""
    reached = asyncio.Event()

    def hook(ticked: ActiveRun) -> None:
        if ticked is run and predicate(run):
            reached.set()

    unsubscribe = run.subscribe(hook)
    try:
        if not predicate(run):
            async with asyncio.timeout(within):
                await reached.wait()
    finally:
        unsubscribe()


class Concurrency:
    """Measures how many gated tasks run at once; the test releases them one by one.

    Task code calls ``await hold(name)``: it is counted as running until the test
    calls ``release_next`` for it. No sleeps: arrivals are reported through a queue.
    """

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.started: list[str] = []
        self.max_tasks = 0
        self.max_slots = 0
        self.snapshots: list[dict[str, int]] = []
        self._arrivals: asyncio.Queue[str] = asyncio.Queue()
        self._gates: dict[str, asyncio.Event] = {}

    async def hold(self, name: str, slots: int = 1) -> str:
        self.running[name] = slots
        self.started.append(name)
        self.max_tasks = max(self.max_tasks, len(self.running))
        self.max_slots = max(self.max_slots, sum(self.running.values()))
        self.snapshots.append(dict(self.running))
        gate = self._gates.setdefault(name, asyncio.Event())
        self._arrivals.put_nowait(name)
        try:
            await gate.wait()
        finally:
            del self.running[name]
        return name

    async def release_all(self, count: int, within: float = 20) -> None:
        """Release ``count`` tasks, each as soon as it has started (oldest first)."""
        async with asyncio.timeout(within):
            for _ in range(count):
                name = await self._arrivals.get()
                self._gates.setdefault(name, asyncio.Event()).set()
