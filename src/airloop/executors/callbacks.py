"""Running callbacks (task and DAG callbacks, notifiers): bounded, logged, never fatal.

One ``CallbackRunner`` per place callbacks run (an executor's runner, a worker call,
the engine for DAG callbacks). Each callback gets ``callback_timeout`` seconds:

- a sync callback (and a notifier's template rendering) runs in a bounded thread pool,
  never on the event loop; past its time limit the thread is abandoned;
- an async callback runs as an owned child task on the loop (or, where task code must
  not run on the scheduler's loop, on a loop of its own in a pool thread), cancelled
  at its time limit;
- an exception or a timeout is reported with its traceback through ``error`` (the
  task's log, or the engine's log) and changes nothing else. Cancellation of the
  caller is never swallowed. See docs/adr/0024.
"""

from __future__ import annotations

import asyncio
import io
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from airloop.authoring.callbacks import Callback, callback_name, is_async_callback
from airloop.authoring.notifier import BaseNotifier
from airloop.executors.threads import DaemonThreadPool, run_in_pool
from airloop.runtime import Offloader

#: Where a failing callback is reported: (one-line message, traceback text).
ErrorReport = Callable[[str, str], None]

#: How long a cancelled async callback gets to stop before it is left behind.
_CANCEL_GRACE = 1.0


class CallbackTimeout(TimeoutError):
    """A callback ran longer than ``callback_timeout``."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class CallbackRunner:
    """Runs callbacks with a time limit each; failures are reported, never raised."""

    def __init__(
        self,
        *,
        timeout: float,
        offload: Offloader,
        pool: DaemonThreadPool | None = None,
        async_on_loop: bool = True,
    ) -> None:
        self.timeout = timeout
        self._offload = offload
        self._pool = pool
        #: False: async callbacks run on a loop of their own in a thread (the thread
        #: executor never runs user code on the scheduler's loop).
        self._async_on_loop = async_on_loop
        #: Async callbacks that ignored their cancellation: referenced while they run on.
        self.abandoned: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        callbacks: Iterable[Callback],
        context: Mapping[str, Any],
        *,
        kind: str,
        error: ErrorReport,
    ) -> None:
        """Call each of ``callbacks`` with ``context``, in order, one at a time."""
        for callback in callbacks:
            name = f"{kind} {callback_name(callback)}"
            try:
                await self._one(callback, context, name)
            except asyncio.CancelledError:
                raise
            except CallbackTimeout as exc:
                stack = exc.args[0] if exc.args else ""
                error(
                    f"{name} did not finish within callback_timeout of {self.timeout:g}s; "
                    "it was stopped (a sync one is abandoned: threads cannot be stopped)",
                    stack or traceback.format_exc(),
                )
            except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - user code
                error(f"{name} failed: {_first_line(exc)}", traceback.format_exc())

    async def _one(self, callback: Callback, context: Mapping[str, Any], name: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        fn: Callable[[Any], Any] = callback
        if isinstance(callback, BaseNotifier):
            if callback.template_fields:  # user macros, files: off the loop
                rendered = await self._sync(callback.render_template_fields, context, deadline)
            else:
                rendered = callback
            fn = rendered.notify
        if not is_async_callback(fn):
            await self._sync(fn, context, deadline)
        elif self._async_on_loop:
            await self._on_loop(fn(context), name, deadline)
        else:

            def in_own_loop(ctx: Any) -> Any:
                remaining = max(0.0, deadline - loop.time())
                return asyncio.run(_limited(fn(ctx), remaining))

            await self._sync(in_own_loop, context, deadline)

    async def _sync(self, fn: Callable[[Any], Any], arg: Any, deadline: float) -> Any:
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            if self._pool is not None:
                return await run_in_pool(self._pool, fn, arg, _nothing, remaining)
            return await asyncio.wait_for(self._offload(fn, arg), remaining)
        except TimeoutError as exc:
            if isinstance(exc, CallbackTimeout):
                raise
            raise CallbackTimeout() from None

    async def _on_loop(self, coro: Awaitable[Any], name: str, deadline: float) -> Any:
        child: asyncio.Task[Any] = asyncio.ensure_future(coro)
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            done, _ = await asyncio.wait({child}, timeout=remaining)
        except asyncio.CancelledError as exc:
            child.cancel(*exc.args)
            await self._settle(child)
            raise
        if done:
            return child.result()
        where = io.StringIO()
        child.print_stack(file=where)  # where it was waiting when its time was up
        child.cancel("callback_timeout exceeded")
        await self._settle(child)
        raise CallbackTimeout(where.getvalue())

    async def _settle(self, child: asyncio.Task[Any]) -> None:
        done, _ = await asyncio.wait({child}, timeout=_CANCEL_GRACE)
        if done:
            if not child.cancelled():
                child.exception()  # retrieved: reported as the timeout or cancellation
            return
        self.abandoned.add(child)
        child.add_done_callback(self.abandoned.discard)


async def _limited(coro: Awaitable[Any], seconds: float) -> Any:
    try:
        async with asyncio.timeout(seconds):
            return await coro
    except TimeoutError:
        raise CallbackTimeout() from None


def _nothing() -> None:
    return None
