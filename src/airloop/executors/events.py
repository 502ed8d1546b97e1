"""What executors report back, and the one channel they report through."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from airloop.core.outcomes import Outcome, new_stimulus_id
from airloop.core.specs import TIKey


@dataclass(frozen=True, slots=True)
class TaskStarted:
    run_pk: int
    key: TIKey
    try_number: int
    at: datetime
    hostname: str
    executor: str
    #: The process running it (the process executor interrupts a cancelled task there).
    pid: int | None = None
    #: Traces this report in the scheduler's log lines and planner errors.
    stimulus_id: str = field(default_factory=lambda: new_stimulus_id("started"), compare=False)


@dataclass(frozen=True, slots=True)
class TaskFinished:
    run_pk: int
    key: TIKey
    try_number: int
    at: datetime
    outcome: Outcome
    duration: float | None = None
    #: Why it ended so, for people (recorded as the task instance's error note).
    reason: str | None = None
    #: May the planner retry this try under the task's retry policy? Decided where
    #: the outcome is classified (a FailTask or an interruption may not).
    retryable: bool = True
    #: The return value, JSON-encoded and size-checked in the worker.
    xcom: str | None = None
    output_length: int | None = None
    #: What the try's templates rendered to (JSON text, masked and size-capped in the
    #: worker); None when it had nothing to render or failed before rendering.
    rendered: str | None = None
    #: A mapped instance's label, from its map_index_template (rendered after the try).
    rendered_map_index: str | None = None
    #: Other XComs of a successful try, (key, JSON text): ``ti.xcom_push`` and
    #: multiple_outputs, encoded and size-checked in the worker too.
    pushed: tuple[tuple[str, str], ...] = ()
    stimulus_id: str = field(default_factory=lambda: new_stimulus_id("finished"), compare=False)
    #: Tasks this successful try decided to skip (a branch, a short circuit: see
    #: ``DownstreamTasksSkipped``). Data, so every executor carries it the same way.
    skip_downstream: tuple[str, ...] = ()
    #: Secrets the try registered in another process (a worker process, a Dask
    #: worker): the scheduler's process masks them too from then on (ADR 0032).
    secrets: tuple[str, ...] = ()


TaskEvent = TaskStarted | TaskFinished


class OutcomeChannel:
    """Executors put events here; the scheduler takes them in batches.

    The channel wakes the scheduler as soon as anything arrives: there is no polling.
    ``put`` is for code on the loop, ``put_threadsafe`` for worker threads.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: list[TaskEvent] = []
        self._wakeup = asyncio.Event()

    def put(self, event: TaskEvent) -> None:
        self._items.append(event)
        self._wakeup.set()

    def put_threadsafe(self, event: TaskEvent) -> None:
        self._loop.call_soon_threadsafe(self.put, event)

    def nudge(self) -> None:
        """Wake the scheduler without an event (a new run, a shutdown request)."""
        self._wakeup.set()

    async def take(self, max_wait: float | None) -> list[TaskEvent]:
        """Everything reported so far; waits up to ``max_wait`` seconds for the first item."""
        if not self._items and not self._wakeup.is_set():
            try:
                async with asyncio.timeout(max_wait):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        self._wakeup.clear()
        items, self._items = self._items, []
        return items
