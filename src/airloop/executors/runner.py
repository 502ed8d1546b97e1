"""Run one try of one task instance and report what happened.

Used by every executor that runs task code in-process. Outcomes are classified here,
once, as an ``Outcome`` with a reason: success (with its XCom), skipped (SkipTask),
interrupted (cancelled; never retried), timed out (execution_timeout; retried),
failed without retry (FailTask, sensor timeout, an XCom that cannot be stored),
failed with retry (anything else).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from airloop.authoring import xcom
from airloop.authoring.context import set_current_context
from airloop.authoring.templating import render_task
from airloop.core.outcomes import Outcome
from airloop.exceptions import FailTask, SkipTask, TaskTimeout, XComError
from airloop.executors.base import WorkItem
from airloop.executors.events import TaskFinished, TaskStarted
from airloop.executors.task_logs import LogSink, current_log_sink, keep_streams_routed
from airloop.runtime import (
    Offloader,
    current_offloader,
    current_resources,
    current_task_label,
)

log = logging.getLogger(__name__)

StartedHook = Callable[[], None]
#: Runs a blocking call in a bounded pool. The hook must be called from the worker
#: thread just before the call starts: the start is logged and reported then, and the
#: timeout counts from then, not from when the call was queued.
SyncRunner = Callable[[Callable[..., Any], StartedHook, Any], Awaitable[Any]]
#: Runs an async operator somewhere other than this loop (the thread executor gives
#: each its own loop in a pool thread). Raises TaskTimeout(abandoned=False) when the
#: task's own timeout cancelled it there.
CoroutineRunner = Callable[[Any, StartedHook, Any], Awaitable[Any]]


def encode_xcom(task: str, value: Any, limit: int) -> tuple[str | None, int | None]:
    """JSON for the database, and len() of a list/tuple/dict for mapping downstream."""
    if value is None:
        return None, None
    text = xcom.encode(f"task {task!r} returned", value, limit)
    length = len(value) if isinstance(value, (list, tuple, dict)) else None
    return text, length


def xcoms_of(item: WorkItem, result: Any) -> tuple[str | None, int | None, tuple[Any, ...]]:
    """What a successful try stores: its return value (unless do_xcom_push=False),
    its length, and the other XComs (pushed; multiple_outputs' keys)."""
    task_id = item.key.task_id
    settings = item.context.dag.get_task(task_id).settings
    pushed = dict(item.context.ti.pushed.items()) if item.context.ti.pushed else {}
    if not settings.do_xcom_push:
        return None, None, tuple(pushed.items())
    text, length = encode_xcom(task_id, result, item.xcom_max_bytes)
    if settings.multiple_outputs:
        pushed.update(xcom.multiple_outputs(task_id, result, item.xcom_max_bytes))
    return text, length, tuple(pushed.items())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


#: How long a task's coroutine gets to finish after its timeout cancelled it.
CANCEL_GRACE = 5.0


class Runner:
    """Runs work items for one executor, reporting through ``report``."""

    def __init__(
        self,
        *,
        executor_name: str,
        hostname: str,
        report: Callable[[TaskStarted | TaskFinished], None],
        report_threadsafe: Callable[[TaskStarted | TaskFinished], None],
        sink_for: Callable[[WorkItem], LogSink],
        run_sync: SyncRunner,
        offloader: Offloader,
        run_coroutine: CoroutineRunner | None = None,
        resources: Any = None,
    ) -> None:
        self.executor_name = executor_name
        self.hostname = hostname
        self.report = report
        self.report_threadsafe = report_threadsafe
        self.run_coroutine = run_coroutine
        self.resources = resources
        #: Task coroutines that ignored the cancellation of their timeout: still owned
        #: (referenced here) while they run on, never awaited again.
        self.abandoned: set[asyncio.Task[Any]] = set()
        self.sink_for = sink_for
        self.run_sync = run_sync
        self.offloader = offloader

    async def _with_timeout(self, coro: Any, item: WorkItem) -> Any:
        """Await the task's coroutine for at most its execution_timeout.

        It runs as a child task so that one which swallows its cancellation cannot hold
        the runner: after CANCEL_GRACE it is abandoned and the task instance fails.
        """
        child: asyncio.Task[Any] = asyncio.create_task(coro, name=item.label)
        try:
            done, _ = await asyncio.wait({child}, timeout=item.timeout)
        except asyncio.CancelledError as exc:
            child.cancel(*exc.args)
            await self._settle(child, item)
            raise
        if done:
            return child.result()
        child.cancel("execution_timeout exceeded")
        raise TaskTimeout(abandoned=not await self._settle(child, item))

    async def _settle(self, child: asyncio.Task[Any], item: WorkItem) -> bool:
        """Give a cancelled child CANCEL_GRACE to stop; False (and keep it) if it will not."""
        done, _ = await asyncio.wait({child}, timeout=CANCEL_GRACE)
        if done:
            if not child.cancelled():
                child.exception()  # retrieved: it is reported through the outcome anyway
            return True
        self.abandoned.add(child)
        child.add_done_callback(self.abandoned.discard)
        log.error("%s ignored its cancellation; abandoned", item.label)
        return False

    async def run(self, item: WorkItem) -> None:
        sink = self.sink_for(item)
        keep_streams_routed()
        current_log_sink.set(sink)
        current_task_label.set(item.label)
        current_offloader.set(self.offloader)
        current_resources.set(self.resources)
        set_current_context(item.context)
        op = item.operator
        started_at = 0.0
        reported_start = False

        def started(in_thread: bool = False) -> None:
            nonlocal started_at, reported_start
            if reported_start:
                return
            reported_start = True
            started_at = time.monotonic()
            sink.line("INFO", f"starting {item.label} on {self.hostname} ({self.executor_name})")
            (self.report_threadsafe if in_thread else self.report)(
                TaskStarted(
                    item.run_pk,
                    item.key,
                    item.try_number,
                    datetime.now(UTC),
                    self.hostname,
                    self.executor_name,
                    os.getpid(),
                )
            )

        def finish(outcome: Outcome, **kw: Any) -> None:
            duration = time.monotonic() - started_at if reported_start else None
            self.report(
                TaskFinished(
                    item.run_pk,
                    item.key,
                    item.try_number,
                    datetime.now(UTC),
                    outcome,
                    duration=duration,
                    **kw,
                )
            )

        try:
            if op.template_fields:  # rendering may read files and run user macros: off-loop
                op, context = await self.offloader(render_task, op, item.context)
                item = replace(item, operator=op, context=context)
                set_current_context(context)
            if op.is_async and self.run_coroutine is not None:
                result = await self.run_coroutine(op, lambda: started(True), item)
            elif op.is_async:
                started()
                if item.timeout is None:
                    result = await op.execute(item.context)
                else:
                    result = await self._with_timeout(op.execute(item.context), item)
            else:

                def call(ctx: Any) -> Any:
                    return op.execute(ctx)

                # The timeout starts when a thread picks the call up, not while it queues.
                result = await self.run_sync(call, lambda: started(True), item)
            text, length, pushed = xcoms_of(item, result)
        except SkipTask as exc:
            sink.line("INFO", f"skipped: {exc}")
            finish(Outcome.SKIPPED, reason=str(exc) or None, retryable=False)
        except (FailTask, XComError) as exc:
            sink.write(traceback.format_exc())
            sink.line("ERROR", f"failed without retry: {first_line(exc)}")
            finish(Outcome.FAILED, reason=first_line(exc), retryable=False)
        except TimeoutError as exc:
            if isinstance(exc, TaskTimeout):
                message = f"execution_timeout of {item.timeout:g}s exceeded"
                if exc.abandoned:
                    message += (
                        "; it ignored its cancellation and was abandoned"
                        if op.is_async
                        else "; the thread running it cannot be stopped and was abandoned"
                    )
                    log.warning("%s: %s", item.label, message)
                sink.line("ERROR", message)
                finish(Outcome.TIMED_OUT, reason=f"TaskTimeout: {message}")
            else:
                sink.write(traceback.format_exc())
                finish(Outcome.FAILED, reason=first_line(exc))
        except asyncio.CancelledError as exc:
            reason = str(exc.args[0]) if exc.args else "cancelled"
            sink.line("ERROR", f"interrupted: {reason}")
            finish(Outcome.INTERRUPTED, reason=f"interrupted: {reason}", retryable=False)
            raise
        except Exception as exc:  # noqa: BLE001 - any error in task code fails the task
            sink.write(traceback.format_exc())
            sink.line("ERROR", f"failed: {first_line(exc)}")
            finish(Outcome.FAILED, reason=first_line(exc))
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised BY THE TASK's code (a real Ctrl-C reaches the CLI's signal handler,
            # not a task): it must fail this task, not stop the whole process.
            sink.write(traceback.format_exc())
            message = f"{first_line(exc)} (raised by the task)"
            sink.line("ERROR", f"failed without retry: {message}")
            finish(Outcome.FAILED, reason=message, retryable=False)
        else:
            sink.line("INFO", f"success in {time.monotonic() - started_at:.3f}s")
            finish(Outcome.SUCCESS, xcom=text, output_length=length, pushed=pushed, retryable=False)
