"""The Dask executor: tasks run on a dask.distributed cluster, driven from our loop.

One ``Client(asynchronous=True)`` on the scheduler's event loop submits each task
instance by reference (a TaskCall: DAG file path, ids, resolved arguments) with
``pure=False``. Sync tasks run in a worker thread; async tasks run as coroutines on
the worker's event loop. Workers announce starts on a Dask event topic.

Sizing: a Dask worker runs at most ``nthreads`` tasks at once, coroutines included.
For long waits (sensors, polling), give workers many threads (see docs/executors.md).

Worker loss: Dask would silently re-run a task on another worker (allowed-failures);
for the cluster we start ourselves that is set to 0, so a lost worker fails the
task instance and airloop's own retry policy decides, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from datetime import datetime
from typing import Any, ClassVar

from airloop.core.outcomes import Outcome
from airloop.core.specs import TIKey
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel, TaskStarted
from airloop.executors.runner import first_line
from airloop.executors.supervised import SupervisedExecutor
from airloop.executors.worker import DASK_STARTED_TOPIC, run_on_dask, run_on_dask_async
from airloop.runtime import in_thread
from airloop.settings import Settings

log = logging.getLogger(__name__)


class DaskExecutor(SupervisedExecutor):
    name: ClassVar[str] = "dask"
    runs_on_scheduler_loop: ClassVar[bool] = False
    runs_coroutines_natively: ClassVar[bool] = True
    survives_scheduler_restart: ClassVar[bool] = False

    def __init__(
        self,
        *,
        address: str | None,
        workers: int,
        threads_per_worker: int,
        pool_resources: dict[str, int] | None = None,
        settings: Settings,
    ) -> None:
        super().__init__()
        self._settings = settings  # sent with each task: workers never re-read them
        self._address = address
        self._workers = workers
        self._threads = threads_per_worker
        self._pool_resources = pool_resources
        self._cluster: Any = None
        self._client: Any = None

    @property
    def capacity(self) -> int | None:
        if self._client is None:
            return None
        info = self._client.scheduler_info()
        return sum(w.get("nthreads", 0) for w in info.get("workers", {}).values()) or None

    @property
    def dashboard_link(self) -> str | None:
        return None if self._client is None else self._client.dashboard_link

    async def start(self, channel: OutcomeChannel) -> None:
        # Importing distributed takes a second or more: in a thread, not on the loop
        # (where it would stall every running task; the watchdog would say so).
        await in_thread(importlib.import_module, "distributed")
        import dask
        from distributed import Client, LocalCluster

        self._channel = channel
        if self._address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = await LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self._workers,
                    threads_per_worker=self._threads,
                    processes=True,
                    host="127.0.0.1",
                    # The scheduler always serves HTTP (health, metrics); on a port of
                    # its own choosing, so a second cluster on the machine does not
                    # find 8787 taken (distributed warns, then moves anyway).
                    dashboard_address=":0",
                    resources=self._pool_resources,
                    asynchronous=True,
                )
            self._client = await Client(self._cluster, asynchronous=True)  # type: ignore[no-untyped-call]
        else:
            self._client = await Client(self._address, asynchronous=True)  # type: ignore[no-untyped-call]
        self._client.subscribe_topic(DASK_STARTED_TOPIC, self._on_started)
        log.info("dask executor connected to %s", self._client.scheduler.address)

    def _on_started(self, event: tuple[float, dict[str, Any]]) -> None:
        assert self._channel is not None
        msg = event[1]
        self._channel.put(
            TaskStarted(
                msg["run_pk"],
                TIKey(msg["task_id"], msg["map_index"]),
                msg["try_number"],
                datetime.fromisoformat(msg["at"]),
                msg["hostname"],
                self.name,
            )
        )

    async def _supervise(self, item: WorkItem) -> None:
        from distributed import KilledWorker

        assert self._channel is not None and self._client is not None
        entry = run_on_dask_async if item.operator.is_async else run_on_dask
        spec = item.context.task.settings
        resources = (
            {spec.pool: spec.pool_slots}
            if self._pool_resources and spec.pool in self._pool_resources
            else None
        )
        future = self._client.submit(
            entry,
            item.call(),
            self._settings,
            pure=False,
            key=f"airloop-{item.label}",
            resources=resources,
        )
        try:
            started, finished = await future
        except KilledWorker as exc:
            self._fail(
                item,
                Outcome.LOST,
                f"the Dask worker running it died or was lost ({first_line(exc)})",
                retryable=True,
            )
            return
        except asyncio.CancelledError as exc:
            await asyncio.shield(self._cancel_future(future))
            reason = str(exc.args[0]) if exc.args else "cancelled"
            self._fail(item, Outcome.INTERRUPTED, f"interrupted: {reason}", retryable=False)
            raise
        except Exception as exc:  # noqa: BLE001 - a Dask-side error (e.g. cannot pickle)
            self._fail(
                item,
                Outcome.FAILED,
                f"the Dask cluster could not run it: {first_line(exc)}",
                retryable=True,
            )
            return
        if started is not None:
            self._channel.put(started)  # no-op if the side channel delivered it already
        self._channel.put(finished)

    async def _cancel_future(self, future: Any) -> None:
        try:
            await future.cancel()
        except Exception as exc:  # noqa: BLE001 - best effort; the result is ignored anyway
            log.warning("could not cancel a Dask future: %s", exc)

    async def shutdown(self, deadline: float) -> None:
        await self._stop_tasks(deadline)
        if self._client is not None:
            self._client.unsubscribe_topic(DASK_STARTED_TOPIC)
            await self._client.close()
            self._client = None
        if self._cluster is not None:
            await self._cluster.close()
            self._cluster = None
