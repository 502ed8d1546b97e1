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

from airloop.exceptions import TaskTimeout

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
        # max_workers, plus one per abandoned call still running: an abandoned thread
        # must not cost the pool a slot forever (a call that never returns would
        # otherwise starve every later sync task).
        self._limit = max_workers
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._queued = 0
        self._abandoned: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._spawned = 0

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` in a pool thread, in a copy of the caller's contextvars."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("thread pool is shut down")
            self._jobs.put((future, contextvars.copy_context(), fn, args))
            self._queued += 1
            self._maybe_spawn()
        return future

    def _maybe_spawn(self) -> None:
        """Start a thread if work waits and no thread is idle (call with the lock held)."""
        if self._queued > self._idle and len(self._threads) < self._limit:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{self._spawned}", daemon=True
            )
            self._spawned += 1
            self._threads.add(thread)
            thread.start()

    def abandon(self, future: concurrent.futures.Future[Any]) -> None:
        """The caller gave up on ``future`` while it runs: lend the pool one more thread
        until that call returns."""
        with self._lock:
            if future.done() or self._closed or future in self._abandoned:
                return
            self._abandoned.add(future)
            self._limit += 1
            self._maybe_spawn()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._threads.discard(me)
                    return
                self._queued -= 1
            future, ctx, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    result = ctx.run(fn, *args)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                if future in self._abandoned:
                    self._abandoned.discard(future)
                    self._limit -= 1
                if len(self._threads) > self._limit:
                    self._threads.discard(me)  # the pool is over its size: retire
                    return
            del job, future, ctx, fn, args

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

    call = pool.submit(body, arg)
    work = asyncio.wrap_future(call)
    try:
        await begun
    except asyncio.CancelledError:
        # Cancel the call itself, now: cancelling ``work`` would reach it only on a
        # later loop iteration, and a thread freed meanwhile would run it.
        if not call.cancel():
            _abandon_soon(loop, pool, call)  # a thread took it before we got here
        raise
    try:
        async with asyncio.timeout(time_limit) as cm:
            return await work
    except TimeoutError:
        if cm.expired():
            _abandon_soon(loop, pool, call)
            raise TaskTimeout(abandoned=True) from None
        raise
    except asyncio.CancelledError:
        _abandon_soon(loop, pool, call)  # cancelled while running: the thread goes on
        raise


def _abandon_soon(
    loop: asyncio.AbstractEventLoop,
    pool: DaemonThreadPool,
    call: concurrent.futures.Future[Any],
) -> None:
    """Lend the pool a thread for ``call`` once the current round of callbacks is over.

    When a shutdown cancels many task instances in one go, the ones still queued must
    drop their calls before an extra thread exists to pick them up: their cancellations
    were scheduled in the same round, before this callback.
    """
    loop.call_soon(pool.abandon, call)
