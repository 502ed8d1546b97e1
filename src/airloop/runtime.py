"""What running task code may ask of the engine, through context variables.

The engine sets these for each task instance it runs (an asyncio task copies the
context, and sync work offloaded to a thread runs in a copied context too), so user
code, sensors and the log handler find "their" task instance without a global.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Offloader(Protocol):
    """Runs a blocking callable off the event loop (a bounded pool owned by the executor)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


#: The task instance whose code is running, as "dag/run/task[map] try N" (for logs and the watchdog).
current_task_label: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "airloop_current_task_label", default=None
)
#: Where sync work goes when task code needs to block (set by the executor).
current_offloader: contextvars.ContextVar[Offloader | None] = contextvars.ContextVar(
    "airloop_current_offloader", default=None
)


async def run_sync(fn: Callable[..., T], /, *args: Any) -> T:
    """Run a blocking callable off the loop, in the running executor's bounded pool."""
    offload = current_offloader.get()
    if offload is None:
        return await asyncio.to_thread(fn, *args)
    return await offload(fn, *args)
