"""The async executor: coroutines on the scheduler's loop, sync code in a bounded pool."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from airloop.core.planner import TIKey
from airloop.engine.events import OutcomeChannel
from airloop.engine.runner import Runner, StartedHook, SyncTimeout
from airloop.engine.task_logs import LogSink
from airloop.executors.base import Executor, WorkItem
from airloop.executors.threads import DaemonThreadPool

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncExecutor(Executor):
    """Thousands of waiting tasks cost one coroutine each; blocking code is offloaded.

    Sync callables go to a dedicated bounded pool of ``sync_threads`` threads, never
    to the loop's default executor (which other libraries share and can starve).
    """

    name: ClassVar[str] = "async"
    runs_on_scheduler_loop: ClassVar[bool] = True
    runs_coroutines_natively: ClassVar[bool] = True
    survives_scheduler_restart: ClassVar[bool] = False

    def __init__(
        self,
        *,
        sync_threads: int,
        hostname: str,
        sink_for: Callable[[WorkItem], LogSink],
    ) -> None:
        self._sync_threads = sync_threads
        self._hostname = hostname
        self._sink_for = sink_for
        # The executor owns every task it starts (see docs/adr/0003): tracked here,
        # cancelled and awaited with a deadline at shutdown.
        self._tasks: dict[tuple[int, TIKey], asyncio.Task[None]] = {}
        self._pool: DaemonThreadPool | None = None
        self._runner: Runner | None = None
        #: Coroutines that ignored cancellation at shutdown and were left behind.
        self.abandoned = 0

    @property
    def capacity(self) -> int | None:
        return None

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def start(self, channel: OutcomeChannel) -> None:
        self._pool = DaemonThreadPool(self._sync_threads, name="airloop-sync")
        self._runner = Runner(
            executor_name=self.name,
            hostname=self._hostname,
            report=channel.put,
            report_threadsafe=channel.put_threadsafe,
            sink_for=self._sink_for,
            run_sync=self._run_sync,
            offloader=self._offload,
        )

    def _offload(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]:
        assert self._pool is not None
        return asyncio.wrap_future(self._pool.submit(fn, *args))

    async def _run_sync(self, fn: Callable[..., Any], started: StartedHook, item: WorkItem) -> Any:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        begun: asyncio.Future[None] = loop.create_future()

        def mark_begun() -> None:
            if not begun.done():
                begun.set_result(None)

        def body(ctx: Any) -> Any:
            started()  # logged and reported from this thread, before the user code runs
            loop.call_soon_threadsafe(mark_begun)
            return fn(ctx)

        work = asyncio.wrap_future(self._pool.submit(body, item.context))
        try:
            await begun
        except asyncio.CancelledError:
            work.cancel()  # still queued: the pool drops it; never runs later
            raise
        try:
            async with asyncio.timeout(item.timeout) as cm:
                return await work
        except TimeoutError:
            if cm.expired():
                raise SyncTimeout() from None
            raise

    def submit(self, item: WorkItem) -> None:
        assert self._runner is not None, "executor not started"
        task = asyncio.create_task(self._runner.run(item), name=item.label)
        self._tasks[item.ref] = task
        task.add_done_callback(functools.partial(self._done, item.ref))

    def _done(self, ref: tuple[int, TIKey], task: asyncio.Task[None]) -> None:
        self._tasks.pop(ref, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("runner for %s crashed", task.get_name(), exc_info=exc)

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

    async def shutdown(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self.cancel_all("executor shutting down")
        pending = set(self._tasks.values())
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
            self.abandoned += len(stuck)
            for task in stuck:
                log.error(
                    "%s did not stop within the shutdown deadline (it ignores cancellation); "
                    "abandoned",
                    task.get_name(),
                )
        if self._pool is not None:
            self._pool.shutdown()
