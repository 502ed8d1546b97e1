"""A bounded pool of daemon threads for sync task code.

Not concurrent.futures.ThreadPoolExecutor: its workers are joined at interpreter
exit, so one sync task abandoned after its execution_timeout (a thread cannot be
killed) would keep the process alive until the function returned. Daemon threads
let the process exit; the abandoned work is logged as such. See docs/adr/0004.
"""

from __future__ import annotations

import asyncio
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


class SyncTimeout(TimeoutError):
    """Sync code outlived its execution_timeout.

    ``abandoned``: the thread running it could not be stopped and was left to finish.
    """

    def __init__(self, abandoned: bool = True) -> None:
        super().__init__("execution_timeout exceeded")
        self.abandoned = abandoned


async def run_in_pool(
    pool: DaemonThreadPool,
    fn: Callable[[Any], T],
    arg: Any,
    started: Callable[[], None],
    time_limit: float | None,
) -> T:
    """Run ``fn(arg)`` in ``pool``; ``started()`` is called from the worker thread first.

    The timeout counts from when a thread picks the call up, not while it is queued.
    Cancelled while queued, the call never runs; cancelled or timed out while running,
    the thread is abandoned (Python cannot stop a thread) and finishes on its own.
    """
    loop = asyncio.get_running_loop()
    begun: asyncio.Future[None] = loop.create_future()

    def mark_begun() -> None:
        if not begun.done():
            begun.set_result(None)

    def body(value: Any) -> T:
        started()
        loop.call_soon_threadsafe(mark_begun)
        return fn(value)

    work = asyncio.wrap_future(pool.submit(body, arg))
    try:
        await begun
    except asyncio.CancelledError:
        work.cancel()  # still queued: the pool drops it
        raise
    try:
        async with asyncio.timeout(time_limit) as cm:
            return await work
    except TimeoutError:
        if cm.expired():
            raise SyncTimeout(abandoned=True) from None
        raise
