"""What running task code may ask of the engine, through context variables.

The engine sets these for each task instance it runs (an asyncio task copies the
context, and sync work offloaded to a thread runs in a copied context too), so user
code, sensors and the log handler find "their" task instance without a global.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Offloader(Protocol):
    """Runs a blocking callable off the event loop (a bounded pool owned by the executor)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


#: The task instance whose code is running, as "dag/run/task[map] try N" (for logs and the watchdog).
current_task_label: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "airloop_current_task_label", default=None
)
#: The engine's shared resources (airloop.executors.resources.Resources), set per task.
current_resources: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "airloop_current_resources", default=None
)
#: Where sync work goes when task code needs to block (set by the executor).
current_offloader: contextvars.ContextVar[Offloader | None] = contextvars.ContextVar(
    "airloop_current_offloader", default=None
)


async def in_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """Run a blocking call in a thread of its own (with this context), and await it.

    For airloop's occasional blocking chores (closing files, joining threads, running
    migrations): never the loop's default executor, which user libraries share.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result = context.run(fn, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # The caller may have given up (a timeout) and its loop may be gone by now.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(
        target=body, name=f"airloop-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return await future


async def run_sync(fn: Callable[..., T], /, *args: Any) -> T:
    """Run a blocking callable off the loop, in the running executor's bounded pool
    (outside an executor: in a thread of its own)."""
    offload = current_offloader.get()
    if offload is None:
        return await in_thread(fn, *args)
    return await offload(fn, *args)


class BlockingOnLoopError(RuntimeError):
    """A sync call would have blocked the event loop."""


class _Slept:
    """What ``delay`` returns once it has slept (off the loop): awaiting it is a no-op."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def delay(seconds: float) -> Awaitable[None]:
    """Sleep the right way for where it is called.

    - In async code: ``await delay(5)`` awaits ``asyncio.sleep`` (the loop runs others).
    - In sync code off the loop (a sync task in a worker thread or process):
      ``delay(5)`` sleeps with ``time.sleep``.
    - In sync code running on the event loop's thread it raises BlockingOnLoopError
      instead of freezing every other task.
    """
    if seconds < 0:
        raise ValueError(f"delay() needs seconds >= 0, got {seconds}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        time.sleep(seconds)  # off-loop: no event loop runs in this thread
        return _Slept()
    caller = sys._getframe(1)
    if caller.f_code.co_flags & _ASYNC_CODE:
        return asyncio.sleep(seconds)
    raise BlockingOnLoopError(
        f"delay({seconds:g}) was called from sync code ({caller.f_code.co_name} at "
        f"{caller.f_code.co_filename}:{caller.f_lineno}) on the event loop's thread, where "
        "sleeping would block every task: make the caller async and 'await delay(...)', "
        "or make the task a sync task (it then runs in a worker thread)"
    )


def resources() -> Any:
    """The running engine's shared resources (AWS clients, pollers...).

    Available in task code run by an engine; a worker process or Dask worker has its
    own for the duration of one task.
    """
    found = current_resources.get()
    if found is None:
        raise RuntimeError("no airloop engine is running this code (resources() is for task code)")
    return found
