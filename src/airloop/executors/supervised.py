"""The part every in-loop supervisor shares: one asyncio task per task instance.

Each executor here runs or watches a task instance from a coroutine on the
scheduler's loop (running it, or awaiting a thread, a process or a Dask future).
Those coroutines are owned by the executor in a registry (docs/adr/0003): cancelled
one by one or all at once, and awaited with a deadline at shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from abc import abstractmethod
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from airloop.core.outcomes import Outcome
from airloop.core.specs import TIKey
from airloop.executors.base import Executor, WorkItem
from airloop.executors.events import OutcomeChannel, TaskFinished

log = logging.getLogger(__name__)


class SupervisedExecutor(Executor):
    def __init__(self) -> None:
        self._tasks: dict[tuple[int, TIKey], asyncio.Task[None]] = {}
        self._channel: OutcomeChannel | None = None

    @property
    def running(self) -> int:
        return len(self._tasks)

    @abstractmethod
    def _supervise(self, item: WorkItem) -> Coroutine[Any, Any, None]:
        """Run or watch ``item`` until it is over, reporting through the channel."""

    def submit(self, item: WorkItem) -> None:
        task = asyncio.create_task(self._supervise(item), name=item.label)
        self._tasks[item.ref] = task
        task.add_done_callback(functools.partial(self._done, item.ref))

    def _done(self, ref: tuple[int, TIKey], task: asyncio.Task[None]) -> None:
        self._tasks.pop(ref, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("supervisor of %s crashed", task.get_name(), exc_info=exc)

    def _fail(self, item: WorkItem, outcome: Outcome, reason: str, *, retryable: bool) -> None:
        assert self._channel is not None
        self._channel.put(
            TaskFinished(
                item.run_pk,
                item.key,
                item.try_number,
                datetime.now(UTC),
                outcome,
                reason=reason,
                retryable=retryable,
            )
        )

    def cancel(self, ref: tuple[int, TIKey], reason: str) -> bool:
        task = self._tasks.get(ref)
        if task is None or task.done():
            return False
        task.cancel(reason)
        return True

    def cancel_all(self, reason: str) -> int:
        n = 0
        for task in list(self._tasks.values()):
            if not task.done():
                task.cancel(reason)
                n += 1
        return n

    async def _stop_tasks(self, deadline: float) -> None:
        """Cancel every supervisor and wait for them until ``deadline`` (loop time)."""
        self.cancel_all("executor shutting down")
        pending = set(self._tasks.values())
        if not pending:
            return
        loop = asyncio.get_running_loop()
        _, stuck = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        self.abandoned += len(stuck)
        for task in stuck:
            log.error(
                "%s did not stop within the shutdown deadline (it ignores cancellation); abandoned",
                task.get_name(),
            )
