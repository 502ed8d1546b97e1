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
        ref = (item.run_pk, item.key)
        self._tasks[ref] = asyncio.create_task(self._owned(ref, item), name=item.label)

    async def _owned(self, ref: tuple[int, TIKey], item: WorkItem) -> None:
        """The supervisor, leaving the registry as it ends.

        In the task itself rather than a done callback: no callback object, no extra
        turn of the loop per task instance. A task cancelled before its first step
        never runs this; ``cancel`` and ``cancel_all`` add the callback then.
        """
        try:
            await self._supervise(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # logged here: nobody awaits the task
            log.error("supervisor of %s crashed", item.label, exc_info=exc)
        finally:
            if self._tasks.get(ref) is asyncio.current_task():
                del self._tasks[ref]

    def _forget(self, ref: tuple[int, TIKey], task: asyncio.Task[None]) -> None:
        """Done callback of a cancelled task (it may never have started ``_owned``)."""
        if self._tasks.get(ref) is task:
            del self._tasks[ref]

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
        task.add_done_callback(functools.partial(self._forget, ref))
        return True

    def cancel_all(self, reason: str) -> int:
        n = 0
        for ref, task in list(self._tasks.items()):
            if not task.done():
                task.cancel(reason)
                task.add_done_callback(functools.partial(self._forget, ref))
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
