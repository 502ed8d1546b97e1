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
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from airloop.authoring import xcom
from airloop.authoring.callbacks import CallbackContext
from airloop.authoring.context import install_lookups, set_current_context
from airloop.authoring.expand_input import PendingOperator
from airloop.authoring.operator import TaskSettings
from airloop.authoring.templating import render_map_index, render_task, stored_rendered_fields
from airloop.connections.accessors import ConnectionAccessor, VariableAccessor
from airloop.connections.lookup import lookup_loop
from airloop.core.masking import redact_text
from airloop.core.outcomes import Outcome
from airloop.exceptions import (
    DownstreamTasksSkipped,
    FailTask,
    SkipTask,
    TaskTimeout,
    XComError,
)
from airloop.executors.base import WorkItem
from airloop.executors.callbacks import CallbackRunner
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


# ``context["var"]`` / ``context["conn"]`` and ``{{ var... }}`` / ``{{ conn... }}`` in
# every process that runs tasks (authoring cannot import the connections layer).
install_lookups(VariableAccessor(), ConnectionAccessor())


def encode_xcom(task: str, value: Any, limit: int) -> tuple[str | None, int | None]:
    """JSON for the database, and len() of a list/tuple/dict for mapping downstream."""
    if value is None:
        return None, None
    text = xcom.encode(f"task {task!r} returned", value, limit)
    length = len(value) if isinstance(value, (list, tuple, dict)) else None
    return text, length


def xcoms_of(
    item: WorkItem, result: Any, settings: TaskSettings | None = None
) -> tuple[str | None, int | None, tuple[Any, ...]]:
    """What a successful try stores: its return value (unless do_xcom_push=False),
    its length, and the other XComs (pushed; multiple_outputs' keys). ``settings``:
    the task's, when the caller looked them up already."""
    task_id = item.key.task_id
    if settings is None:
        settings = item.context.dag.get_task(task_id).settings
    found = item.context.ti.pushed
    # Most tries push nothing: no copy then (this runs once per task instance).
    texts = found.items() if found is not None else []
    if not settings.do_xcom_push:
        return None, None, tuple(texts)
    text, length = encode_xcom(task_id, result, item.xcom_max_bytes)
    if not settings.multiple_outputs:
        return text, length, tuple(texts)
    pushed = dict(texts)
    pushed.update(xcom.multiple_outputs(task_id, result, item.xcom_max_bytes))
    return text, length, tuple(pushed.items())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _render(op: Any, context: Any) -> tuple[Any, Any, str | None]:
    """Render ``op``'s templates and what is stored of them (blocking: off the loop)."""
    op, context = render_task(op, context)
    return op, context, stored_rendered_fields(op.task_id, op.rendered_fields)


#: How a try ended: its outcome, duration, TaskFinished fields, the exception if any.
_Ended = tuple[Outcome, float | None, dict[str, Any], BaseException | None]

#: How long a task's coroutine gets to finish after its timeout cancelled it.
CANCEL_GRACE = 5.0
#: callback_timeout when a runner is not given one (settings.callback_timeout).
DEFAULT_CALLBACK_TIMEOUT = 300.0


def callback_kind(item: WorkItem, outcome: Outcome, retryable: bool) -> str:
    """Which task callback an outcome fires (Airflow's rules: retry while tries remain)."""
    if outcome is Outcome.SUCCESS:
        return "on_success_callback"
    if outcome is Outcome.SKIPPED:
        return "on_skipped_callback"
    if retryable and item.try_number < item.context.ti.max_tries:
        return "on_retry_callback"
    return "on_failure_callback"


class _Start:
    """Reports one try's start, once, and remembers when it was.

    Called on the loop (``on_loop``) or, as the StartedHook, from the worker thread
    that picks a blocking call up: the start is logged and reported then. One object
    per try rather than closures over the runner's locals.
    """

    __slots__ = ("_item", "_runner", "_sink", "at", "reported")

    def __init__(self, runner: Runner, item: WorkItem, sink: LogSink) -> None:
        self._runner = runner
        self._item = item
        self._sink = sink
        #: time.monotonic() when reported (0.0 until then).
        self.at = 0.0
        self.reported = False

    def on_loop(self) -> None:
        if not self.reported:
            self._report(self._runner.report)

    def __call__(self) -> None:
        """The StartedHook: called from a worker thread."""
        if not self.reported:
            self._report(self._runner.report_threadsafe)

    def _report(self, report: Callable[[TaskStarted | TaskFinished], None]) -> None:
        self.reported = True
        self.at = time.monotonic()
        runner, item = self._runner, self._item
        self._sink.line("INFO", f"starting {item.label}{runner.start_suffix}")
        report(
            TaskStarted(
                item.run_pk,
                item.key,
                item.try_number,
                datetime.now(UTC),
                runner.hostname,
                runner.executor_name,
                os.getpid(),
            )
        )


def _ended(start: _Start, outcome: Outcome, **kw: Any) -> _Ended:
    """How the try ended: outcome, duration, report fields, the exception if any
    (called in the ``except`` clause that classified it)."""
    duration = time.monotonic() - start.at if start.reported else None
    return outcome, duration, kw, sys.exc_info()[1]


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
        callbacks: CallbackRunner | None = None,
        detach_callbacks: bool = False,
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
        #: Runs the task's callbacks (time limit, errors into the task's log).
        self.callbacks = callbacks or CallbackRunner(
            timeout=DEFAULT_CALLBACK_TIMEOUT, offload=offloader
        )
        #: True: the end-of-try callbacks run after the outcome is reported, as tasks
        #: owned here (``callback_tasks``), awaited by ``drain_callbacks`` at shutdown.
        #: False (a worker process or Dask call): awaited before ``run`` returns.
        self.detach_callbacks = detach_callbacks
        self.callback_tasks: set[asyncio.Task[None]] = set()
        #: The end of every "starting ..." log line (formatted once, not per try).
        self.start_suffix = f" on {hostname} ({executor_name})"

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
        # Sync lookups (templates, Variable.get, get_connection in a sync task) made
        # from this task's worker threads run on this loop while the thread waits.
        lookup_loop.set(asyncio.get_running_loop())
        set_current_context(item.context)
        op = item.operator
        #: Reports the start once (here or from the thread that picks the call up).
        start = _Start(self, item, sink)
        #: What the template fields rendered to (JSON text), sent with the try's end.
        rendered: str | None = None
        #: The task's settings (callbacks), looked up once the operator is final.
        settings: TaskSettings | None = None

        try:
            if isinstance(op, PendingOperator):  # .map() functions are user code: off-loop
                op = await self.offloader(op.finish)
                item = replace(item, operator=op, context=replace(item.context, task=op))
                set_current_context(item.context)
            if op.has_templates:  # rendering may read files and run user macros: off-loop
                op, context, rendered = await self.offloader(_render, op, item.context)
                item = replace(item, operator=op, context=context)
                set_current_context(context)
            settings = self._task_settings(item)  # once per try: callbacks, XCom options
            on_execute = settings.on_execute_callback
            if on_execute:
                start.on_loop()  # Airflow: the task is running when on_execute_callback fires
                await self._run_callbacks(item, sink, "on_execute_callback", on_execute)
            if op.is_async and self.run_coroutine is not None:
                result = await self.run_coroutine(op, start, item)
            elif op.is_async:
                start.on_loop()
                if item.timeout is None:
                    result = await op.execute(item.context)
                else:
                    result = await self._with_timeout(op.execute(item.context), item)
            else:

                def call(ctx: Any) -> Any:
                    return op.execute(ctx)

                # The timeout starts when a thread picks the call up, not while it queues.
                result = await self.run_sync(call, start, item)
            text, length, pushed = xcoms_of(item, result, settings)
        except DownstreamTasksSkipped as decided:
            # A success that skips some tasks downstream (branch, short circuit).
            try:
                text, length, pushed = xcoms_of(item, decided.value, settings)
            except XComError as exc:
                sink.line("ERROR", f"failed without retry: {first_line(exc)}")
                end = _ended(start, Outcome.FAILED, reason=first_line(exc), retryable=False)
            else:
                sink.line("INFO", f"{decided}")
                sink.line("INFO", f"success in {time.monotonic() - start.at:.3f}s")
                end = _ended(
                    start,
                    Outcome.SUCCESS,
                    xcom=text,
                    output_length=length,
                    pushed=pushed,
                    retryable=False,
                    skip_downstream=decided.tasks,
                )
        except SkipTask as exc:
            sink.line("INFO", f"skipped: {exc}")
            end = _ended(start, Outcome.SKIPPED, reason=str(exc) or None, retryable=False)
        except (FailTask, XComError) as exc:
            sink.write(traceback.format_exc())
            sink.line("ERROR", f"failed without retry: {first_line(exc)}")
            end = _ended(start, Outcome.FAILED, reason=first_line(exc), retryable=False)
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
                end = _ended(start, Outcome.TIMED_OUT, reason=f"TaskTimeout: {message}")
            else:
                sink.write(traceback.format_exc())
                end = _ended(start, Outcome.FAILED, reason=first_line(exc))
        except asyncio.CancelledError as exc:
            reason = str(exc.args[0]) if exc.args else "cancelled"
            sink.line("ERROR", f"interrupted: {reason}")
            end = _ended(
                start, Outcome.INTERRUPTED, reason=f"interrupted: {reason}", retryable=False
            )
            self._report_end(item, end, rendered)
            raise
        except Exception as exc:  # noqa: BLE001 - any error in task code fails the task
            sink.write(traceback.format_exc())
            sink.line("ERROR", f"failed: {first_line(exc)}")
            end = _ended(start, Outcome.FAILED, reason=first_line(exc))
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised BY THE TASK's code (a real Ctrl-C reaches the CLI's signal handler,
            # not a task): it must fail this task, not stop the whole process.
            sink.write(traceback.format_exc())
            message = f"{first_line(exc)} (raised by the task)"
            sink.line("ERROR", f"failed without retry: {message}")
            end = _ended(start, Outcome.FAILED, reason=message, retryable=False)
        else:
            sink.line("INFO", f"success in {time.monotonic() - start.at:.3f}s")
            end = _ended(
                start,
                Outcome.SUCCESS,
                xcom=text,
                output_length=length,
                pushed=pushed,
                retryable=False,
            )
        label = None
        if item.key.map_index >= 0:  # only a mapped instance has a label to render
            try:
                label = await self._map_index_label(item, sink)
            except asyncio.CancelledError:
                self._report_end(item, end, rendered)  # the try is over: its outcome stands
                raise
        self._report_end(item, end, rendered, label)
        outcome, _, kw, error = end
        retryable = kw.get("retryable", True)
        kind = callback_kind(item, outcome, retryable)
        callbacks: tuple[Any, ...] = getattr(settings or self._task_settings(item), kind)
        if callbacks:  # most tasks have none: no coroutine for them
            await self._after_try(item, sink, kind, callbacks, error, kw.get("reason"))

    def _report_end(
        self, item: WorkItem, end: _Ended, rendered: str | None, label: str | None = None
    ) -> None:
        """Report how the try ended (``rendered``: its template fields, as JSON text;
        ``label``: a mapped instance's rendered map_index_template)."""
        outcome, duration, kw, _ = end
        if kw.get("reason"):  # the stored error: secrets masked where they are known
            kw = {**kw, "reason": redact_text(kw["reason"])}
        self.report(
            TaskFinished(
                item.run_pk,
                item.key,
                item.try_number,
                datetime.now(UTC),
                outcome,
                duration=duration,
                rendered=rendered,
                rendered_map_index=label,
                **kw,
            )
        )

    async def _map_index_label(self, item: WorkItem, sink: LogSink) -> str | None:
        """A mapped instance's ``map_index_template``, rendered after the try with its
        context (as Airflow 3 does); a template that fails is logged, not fatal."""
        if item.key.map_index < 0:
            return None
        template = item.context.dag.get_task(item.key.task_id).settings.map_index_template
        if template is None:
            return None
        try:
            label: str = await self.offloader(render_map_index, template, item.context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the label is optional; the try is over
            sink.line("WARNING", f"map_index_template not rendered: {first_line(exc)}")
            return None
        return label

    # -- callbacks (docs/adr/0024) --------------------------------------------------

    @staticmethod
    def _task_settings(item: WorkItem) -> TaskSettings:
        # The DAG's node holds the resolved settings (a mapped instance's copy may not).
        node = item.context.dag.task_dict.get(item.key.task_id)
        return node.settings if node is not None else item.operator.settings

    async def _after_try(
        self,
        item: WorkItem,
        sink: LogSink,
        kind: str,
        callbacks: tuple[Any, ...],
        error: BaseException | None,
        reason: str | None,
    ) -> None:
        """The ``callbacks`` this try's outcome fires (``kind``, from ``callback_kind``):
        after the report, detached or awaited."""
        extra: dict[str, Any] = {"reason": reason}
        if kind in ("on_failure_callback", "on_retry_callback"):
            extra["exception"] = error if error is not None else reason
        coro = self._run_callbacks(item, sink, kind, callbacks, extra)
        if not self.detach_callbacks:
            await coro
            return
        task = asyncio.create_task(coro, name=f"{item.label} {kind}")
        self.callback_tasks.add(task)
        task.add_done_callback(self.callback_tasks.discard)

    async def _run_callbacks(
        self,
        item: WorkItem,
        sink: LogSink,
        kind: str,
        callbacks: tuple[Any, ...],
        extra: dict[str, Any] | None = None,
    ) -> None:
        context = CallbackContext(item.context)
        context.update(extra or {})

        def error(message: str, trace: str) -> None:
            sink.write(trace)
            sink.line("ERROR", message)

        await self.callbacks.run(callbacks, context, kind=kind, error=error)

    async def drain_callbacks(self, deadline: float) -> None:
        """Shutdown: wait for running callbacks until ``deadline`` (loop time), then
        cancel what is left (and give it a moment to stop)."""
        if not self.callback_tasks:
            return
        loop = asyncio.get_running_loop()
        pending = set(self.callback_tasks)
        _, late = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for task in late:
            log.warning("%s still running at shutdown; cancelled", task.get_name())
            task.cancel("shutting down")
        if late:
            await asyncio.wait(late, timeout=1.0)
