"""The async executor: coroutines on the scheduler's loop, sync code in a bounded pool."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from airloop.executors.base import WorkItem
from airloop.executors.callbacks import CallbackRunner
from airloop.executors.events import OutcomeChannel
from airloop.executors.runner import DEFAULT_CALLBACK_TIMEOUT, Runner, StartedHook
from airloop.executors.supervised import SupervisedExecutor
from airloop.executors.task_logs import LogSink
from airloop.executors.threads import DaemonThreadPool, run_in_pool

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncExecutor(SupervisedExecutor):
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
        resources: Any = None,
        callback_timeout: float = DEFAULT_CALLBACK_TIMEOUT,
    ) -> None:
        super().__init__()
        self._callback_timeout = callback_timeout
        self._sync_threads = sync_threads
        self._hostname = hostname
        self._sink_for = sink_for
        self._resources = resources
        self._pool: DaemonThreadPool | None = None
        self._runner: Runner | None = None

    @property
    def capacity(self) -> int | None:
        return None

    async def start(self, channel: OutcomeChannel) -> None:
        self._channel = channel
        self._pool = DaemonThreadPool(self._sync_threads, name="airloop-sync")
        self._runner = Runner(
            executor_name=self.name,
            hostname=self._hostname,
            report=channel.put,
            report_threadsafe=channel.put_threadsafe,
            sink_for=self._sink_for,
            run_sync=self._run_sync,
            offloader=self._offload,
            resources=self._resources,
            callbacks=CallbackRunner(
                timeout=self._callback_timeout,
                offload=self._offload,
                pool=self._pool,
                async_on_loop=self.runs_coroutines_natively,
            ),
            detach_callbacks=True,
            **self._runner_options(),
        )

    def _runner_options(self) -> dict[str, Any]:
        return {}

    def _offload(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]:
        assert self._pool is not None
        return asyncio.wrap_future(self._pool.submit(fn, *args))

    async def _run_sync(self, fn: Callable[..., Any], started: StartedHook, item: WorkItem) -> Any:
        assert self._pool is not None
        return await run_in_pool(self._pool, fn, item.context, started, item.timeout)

    def _supervise(self, item: WorkItem) -> Coroutine[Any, Any, None]:
        assert self._runner is not None, "executor not started"
        return self._runner.run(item)

    async def shutdown(self, deadline: float) -> None:
        await self._stop_tasks(deadline)
        if self._runner is not None:
            # Callbacks of tries that ended: they get until the deadline, then stop.
            await self._runner.drain_callbacks(deadline)
        if self._runner is not None and self._runner.abandoned:
            # Coroutines that ignored their timeout's cancellation still run.
            for task in self._runner.abandoned:
                task.cancel("executor shutting down")
            self.abandoned += len(self._runner.abandoned)
        if self._pool is not None:
            self._pool.shutdown()
