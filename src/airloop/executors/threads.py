"""A bounded pool of daemon threads for sync task code.

Not concurrent.futures.ThreadPoolExecutor: its workers are joined at interpreter
exit, so one sync task abandoned after its execution_timeout (a thread cannot be
killed) would keep the process alive until the function returned. Daemon threads
let the process exit; the abandoned work is logged as such. See docs/adr/0004.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[
    concurrent.futures.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


class DaemonThreadPool:
    def __init__(self, max_workers: int, name: str = "airloop-sync") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.max_workers = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in a pool thread, in a copy of the caller's contextvars."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("thread pool is shut down")
            self._jobs.put((future, contextvars.copy_context(), fn, args))
            if self._idle == 0 and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1 if self._idle else 0
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, ctx, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    result = ctx.run(fn, *args)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del job, future, ctx, fn, args
            with self._lock:
                self._idle += 1

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._threads) - self._idle

    def shutdown(self) -> None:
        """Stop accepting work; idle threads exit, busy ones finish (they are daemons)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
