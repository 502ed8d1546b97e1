"""The thread executor: every task in a bounded thread pool, none on the scheduler's loop.

An ``async def`` task gets its own event loop inside its thread (``asyncio.run``), so
the scheduler's loop only supervises: it never runs task code. Choose it to run a
DAG "without the async executor" (settings ``use_async = false``), or for code that
misbehaves on a shared loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

from airloop.exceptions import TaskTimeout
from airloop.executors import runner
from airloop.executors.async_executor import AsyncExecutor
from airloop.executors.base import WorkItem
from airloop.executors.runner import StartedHook
from airloop.executors.threads import run_in_pool
from airloop.runtime import in_thread


class ThreadExecutor(AsyncExecutor):
    name: ClassVar[str] = "thread"
    runs_on_scheduler_loop: ClassVar[bool] = False
    runs_coroutines_natively: ClassVar[bool] = False

    @property
    def capacity(self) -> int | None:
        return self._sync_threads

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Coroutines abandoned after ignoring their timeout (set once they return).
        self._stubborn: set[threading.Event] = set()

    async def shutdown(self, deadline: float) -> None:
        await super().shutdown(deadline)
        self.abandoned += sum(1 for finished in self._stubborn if not finished.is_set())
        self._stubborn.clear()

    def _runner_options(self) -> dict[str, Any]:
        return {"run_coroutine": self._run_coroutine}

    async def _run_coroutine(self, op: Any, started: StartedHook, item: WorkItem) -> Any:
        assert self._pool is not None
        # Where the task's coroutine runs, so a cancellation here can reach it there.
        inner: dict[str, Any] = {}
        cancelled = threading.Event()
        finished = threading.Event()

        def body(context: Any) -> Any:
            async def main() -> Any:
                inner["loop"] = asyncio.get_running_loop()
                inner["task"] = asyncio.current_task()
                if cancelled.is_set():  # cancelled between "started" and now
                    raise asyncio.CancelledError("cancelled before it began")
                try:
                    async with asyncio.timeout(item.timeout) as cm:
                        result = await op.execute(context)
                except TimeoutError:
                    if cm.expired():
                        raise TaskTimeout(abandoned=False) from None
                    raise
                if cm.expired():  # it swallowed its timeout's cancellation: still a timeout
                    raise TaskTimeout(abandoned=False)
                return result

            try:
                return asyncio.run(main())
            finally:
                finished.set()

        try:
            # As on the async executor: a coroutine that ignores its timeout's
            # cancellation gets CANCEL_GRACE more, then its thread is abandoned.
            limit = None if item.timeout is None else item.timeout + runner.CANCEL_GRACE
            return await run_in_pool(self._pool, body, item.context, started, limit)
        except (asyncio.CancelledError, TaskTimeout) as exc:
            if isinstance(exc, TaskTimeout) and exc.abandoned:
                self._stubborn.add(finished)  # counted at shutdown if it still runs
            cancelled.set()
            loop, task = inner.get("loop"), inner.get("task")
            if loop is not None and task is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
                if isinstance(exc, asyncio.CancelledError):
                    # Its clean-up (finally blocks; a command's process group, ADR
                    # 0033) runs in its thread: the try ends after it, bounded.
                    await in_thread(finished.wait, runner.CANCEL_GRACE)
            raise
