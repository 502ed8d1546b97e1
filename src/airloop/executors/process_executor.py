"""The process executor: each task in a pool process, shipped by reference.

The pool uses ``forkserver`` (or ``spawn``): never ``fork`` from a process that runs
an event loop and threads. A task travels as a ``TaskCall`` (DAG file path, ids,
resolved arguments), is rebuilt in the worker from the DAG file, and runs there -- an
async task on its own loop inside the worker, never on the scheduler's. A worker
that dies (OOM-killed, segfault, os._exit) fails the task instances it held with a
clear reason; the pool is replaced and later tasks run normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

from airloop.core.outcomes import Outcome
from airloop.core.specs import TIKey
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel
from airloop.executors.runner import first_line
from airloop.executors.supervised import SupervisedExecutor
from airloop.executors.worker import INTERRUPT_SIGNAL, init_process, run_in_process
from airloop.runtime import in_thread
from airloop.settings import Settings

log = logging.getLogger(__name__)


class ProcessExecutor(SupervisedExecutor):
    name: ClassVar[str] = "process"
    runs_on_scheduler_loop: ClassVar[bool] = False
    runs_coroutines_natively: ClassVar[bool] = False
    survives_scheduler_restart: ClassVar[bool] = False

    def __init__(
        self, *, workers: int, start_method: str = "forkserver", settings: Settings
    ) -> None:
        super().__init__()
        self._settings = settings  # shipped to each worker process by the initializer
        if workers < 1:
            raise ValueError("process executor needs at least 1 worker")
        self._workers = workers
        self._mp = multiprocessing.get_context(start_method)
        self._pool: ProcessPoolExecutor | None = None
        self._started: Any = None  # a multiprocessing queue: workers -> this process
        self._reader: threading.Thread | None = None
        #: Which worker process runs which task instance (from their start reports).
        self._pids: dict[tuple[int, TIKey], int] = {}
        self.restarts = 0

    @property
    def capacity(self) -> int | None:
        return self._workers

    async def start(self, channel: OutcomeChannel) -> None:
        self._channel = channel
        self._started = self._mp.Queue()
        self._pool = self._new_pool()
        self._reader = threading.Thread(
            target=self._forward_starts, name="airloop-process-starts", daemon=True
        )
        self._reader.start()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._workers,
            mp_context=self._mp,
            initializer=init_process,
            initargs=(self._started, self._settings),
        )

    def _forward_starts(self) -> None:
        """Thread: relay workers' "started" reports to the scheduler's channel."""
        assert self._channel is not None
        while True:
            try:
                event = self._started.get()
            except (EOFError, OSError, ValueError):
                return  # the queue was closed at shutdown
            if event is None:
                return
            if event.pid is not None:
                self._pids[(event.run_pk, event.key)] = event.pid
            self._channel.put_threadsafe(event)

    async def _supervise(self, item: WorkItem) -> None:
        assert self._channel is not None and self._pool is not None
        pool = self._pool
        try:
            call = pool.submit(run_in_process, item.call())
        except BrokenProcessPool:
            self._replace(pool)
            pool = self._pool
            call = pool.submit(run_in_process, item.call())
        try:
            started, finished = await asyncio.wrap_future(call)
        except BrokenProcessPool:
            self._replace(pool)
            self._fail(
                item,
                Outcome.LOST,
                "the worker process died while running it (killed, out of memory, or crashed); "
                "the process pool was restarted",
                retryable=True,
            )
            return
        except asyncio.CancelledError as exc:
            if not call.cancel():  # a queued call simply never starts; a running one:
                self._interrupt(item)
            reason = str(exc.args[0]) if exc.args else "cancelled"
            self._fail(item, Outcome.INTERRUPTED, f"interrupted: {reason}", retryable=False)
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. arguments that cannot be pickled
            self._fail(
                item,
                Outcome.FAILED,
                f"cannot run in a worker process: {first_line(exc)}",
                retryable=False,
            )
            return
        finally:
            self._pids.pop(item.ref, None)
        if started is not None:
            self._channel.put(started)  # no-op if the side channel delivered it already
        self._channel.put(finished)

    def _interrupt(self, item: WorkItem) -> None:
        """Stop the task in the worker running it (its loop or its sync code is interrupted).

        The pid comes from the task's own start report, and the call is still running
        (the future was not done), so that process is busy with this task instance.
        """
        pid = self._pids.get(item.ref)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it may be gone already
                os.kill(pid, INTERRUPT_SIGNAL)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:
            log.error("a worker process died; restarting the process pool")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            self.restarts += 1

    async def shutdown(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        await self._stop_tasks(deadline)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # Work still running in a worker cannot be cancelled from here: stop the
            # processes (ProcessPoolExecutor offers no public way, hence _processes).
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            await in_thread(_join_all, processes, max(0.5, deadline - loop.time()))
        if self._started is not None:
            self._started.put(None)
            if self._reader is not None:
                await in_thread(self._reader.join, 5)
            self._started.close()
            self._started = None


def _join_all(processes: list[Any], timeout: float) -> None:
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(1)
