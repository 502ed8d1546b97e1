"""The executors an engine uses, started on first need and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from airloop.core.specs import TIKey
from airloop.executors.base import Executor, WorkItem
from airloop.executors.events import OutcomeChannel
from airloop.executors.task_logs import LogSink
from airloop.settings import Settings

log = logging.getLogger(__name__)


class ExecutorRegistry:
    """Creates each executor the first time a run needs it (a Dask cluster is not free).

    The scheduler submits through ``get(name)``; shutdown and cancellation reach every
    executor that was started.
    """

    def __init__(
        self,
        settings: Settings,
        channel: OutcomeChannel,
        hostname: str,
        sink_for: Callable[[WorkItem], LogSink],
        resources: Any = None,
    ) -> None:
        self._settings = settings
        self._channel = channel
        self._hostname = hostname
        self._sink_for = sink_for
        self._resources = resources
        self._executors: dict[str, Executor] = {}
        self._lock = asyncio.Lock()
        self.abandoned = 0

    def _create(self, name: str) -> Executor:
        s = self._settings
        if name == "async":
            from airloop.executors.async_executor import AsyncExecutor

            return AsyncExecutor(
                sync_threads=s.sync_threads,
                hostname=self._hostname,
                sink_for=self._sink_for,
                resources=self._resources,
                callback_timeout=s.callback_timeout,
            )
        if name == "thread":
            from airloop.executors.thread_executor import ThreadExecutor

            return ThreadExecutor(
                sync_threads=s.thread_workers,
                hostname=self._hostname,
                sink_for=self._sink_for,
                resources=self._resources,
                callback_timeout=s.callback_timeout,
            )
        if name == "process":
            from airloop.executors.process_executor import ProcessExecutor

            return ProcessExecutor(
                workers=s.process_workers, start_method=s.process_start_method, settings=s
            )
        if name == "dask":
            from airloop.executors.dask_executor import DaskExecutor

            return DaskExecutor(
                address=s.dask_address,
                workers=s.dask_workers,
                threads_per_worker=s.dask_threads_per_worker,
                pool_resources=dict(s.pools) if s.dask_pool_resources else None,
                settings=s,
            )
        raise ValueError(f"unknown executor {name!r}")

    async def ensure(self, names: Iterable[str]) -> None:
        """Start the executors named (those not started yet)."""
        async with self._lock:
            for name in sorted(set(names)):
                if name not in self._executors:
                    executor = self._create(name)
                    await executor.start(self._channel)
                    self._executors[name] = executor
                    log.info("started the %s executor", name)

    def get(self, name: str) -> Executor:
        return self._executors[name]

    @property
    def started(self) -> dict[str, Executor]:
        return dict(self._executors)

    def cancel(self, ref: tuple[int, TIKey], reason: str) -> bool:
        """Cancel one task instance, wherever it runs."""
        return any(e.cancel(ref, reason) for e in self._executors.values())

    def cancel_all(self, reason: str) -> int:
        return sum(e.cancel_all(reason) for e in self._executors.values())

    async def shutdown(self, deadline: float) -> None:
        executors = list(self._executors.values())
        self._executors.clear()
        results = await asyncio.gather(
            *(e.shutdown(deadline) for e in executors), return_exceptions=True
        )
        for executor, result in zip(executors, results, strict=True):
            self.abandoned += executor.abandoned
            if isinstance(result, BaseException):
                log.error("the %s executor did not shut down cleanly: %s", executor.name, result)
