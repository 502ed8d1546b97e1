"""The worker side of the process and Dask executors: run a TaskCall by reference.

A worker (a pool process, a Dask worker) receives a ``TaskCall`` -- the DAG file's
path and ids plus the task's resolved arguments -- loads the DAG file (once per
process and file version), rebuilds the operator and runs it with the same Runner as
in-process executors, so outcomes are classified the same way everywhere. The task's
log is appended to its file directly by the worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from airloop.authoring.context import DagRunInfo
from airloop.connections.sources import receive_environment
from airloop.core import masking
from airloop.core.outcomes import Outcome
from airloop.core.specs import TIKey
from airloop.dagbag.loader import DagFile, load_dag_file, pick_dag
from airloop.exceptions import TaskTimeout
from airloop.executors.base import TaskCall, WorkItem
from airloop.executors.callbacks import CallbackRunner
from airloop.executors.events import TaskFinished, TaskStarted
from airloop.executors.resources import Resources
from airloop.executors.runner import Runner, StartedHook
from airloop.executors.task_logs import LogSink, task_log_routing
from airloop.executors.threads import DaemonThreadPool, run_in_pool
from airloop.runtime import in_thread
from airloop.settings import Settings

# DAG files loaded in this worker process, by (path, modification time): a worker
# imports each file once, and again only when it changes.
_loaded: dict[tuple[str, int], DagFile] = {}
_loaded_lock = threading.Lock()

#: Where a pool process sends "started" reports (set by the pool's initializer).
_started_queue: Any = None
#: The scheduler's settings, shipped by the pool's initializer: a worker never re-reads
#: them (it would miss --config and any argument the scheduler was given).
_settings: Settings | None = None


class FileSink(LogSink):
    """Appends to the task's log file (the worker owns it while the task runs)."""

    __slots__ = ("_lock", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def raw(self, text: str) -> None:
        text = masking.redact_text(text)  # a secret split over two writes is missed
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)


def _dag_file(path: str) -> DagFile:
    key = (path, Path(path).stat().st_mtime_ns)
    with _loaded_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            loaded = load_dag_file(path)
            _loaded[key] = loaded
        return loaded


def rebuild_item(call: TaskCall) -> WorkItem:
    """The work item again, in this process: operator rebuilt from the DAG file."""
    dag = pick_dag(_dag_file(call.dag_file), call.dag_id)
    node = dag.get_task(call.task_id)
    operator = node.rebuild(call.bound)
    return WorkItem.build(
        dag=dag,
        operator=operator,
        run=DagRunInfo(
            call.dag_id,
            call.run_id,
            call.logical_date,
            call.run_type,
            call.params,
            data_interval_start=call.data_interval[0] if call.data_interval else None,
            data_interval_end=call.data_interval[1] if call.data_interval else None,
            prev_data_interval_start_success=call.previous_success[0],
            prev_data_interval_end_success=call.previous_success[1],
            prev_start_date_success=call.previous_success[2],
            test_mode=call.test_mode,
        ),
        run_pk=call.run_pk,
        map_index=call.map_index,
        try_number=call.try_number,
        log_path=call.log_path,
        xcom_max_bytes=call.xcom_max_bytes,
        executor=call.executor,
        bound=call.bound,
    )


@contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Interrupt sync code in this (main) thread after ``seconds``: it raises TaskTimeout."""
    if not seconds:
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TaskTimeout(abandoned=False)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


#: Sent by the process executor to the worker running a task instance it cancels.
INTERRUPT_SIGNAL = signal.SIGUSR1
INTERRUPTED = "interrupted by the scheduler"


@contextmanager
def _interruptible() -> Iterator[None]:
    """While sync code runs in this thread, INTERRUPT_SIGNAL raises CancelledError in it."""

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        raise asyncio.CancelledError(INTERRUPTED)

    previous = signal.signal(INTERRUPT_SIGNAL, on_interrupt)
    try:
        yield
    finally:
        signal.signal(INTERRUPT_SIGNAL, previous)


class _MainThreadCalls:
    """Sync task code in a pool process's main thread, with no event loop in that thread.

    A pool process runs one task at a time. For a sync task the Runner's loop runs in a
    helper thread and hands the call to the main thread, which runs it with no loop
    running there -- so ``airloop.delay()`` sleeps and ``asyncio.run()`` works, as on
    every other executor (ADR 0010) -- and which is where signals land: SIGALRM
    enforces the timeout and INTERRUPT_SIGNAL a cancellation inside the sync code
    itself, so the process is never left running abandoned work.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    async def run(self, fn: Callable[..., Any], started: StartedHook, item: WorkItem) -> Any:
        """On the helper thread's loop: run ``fn(item.context)`` in the main thread."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
        context = contextvars.copy_context()  # the task's log sink, label, resources

        def body() -> Any:
            with _interruptible(), _alarm(item.timeout):
                started()
                return fn(item.context)

        def job() -> None:
            try:
                outcome: tuple[Any, BaseException | None] = (context.run(body), None)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the loop below
                outcome = (None, exc)
            loop.call_soon_threadsafe(settle, outcome)

        def settle(outcome: tuple[Any, BaseException | None]) -> None:
            if not done.done():
                done.set_result(outcome)

        self._jobs.put(job)
        result, error = await done
        if error is not None:
            raise error
        return result

    def serve(self) -> None:
        """In the main thread: run the calls handed over until ``close``."""
        while (job := self._jobs.get()) is not None:
            job()

    def close(self) -> None:
        self._jobs.put(None)


def _run_sync_task(runner: Runner, item: WorkItem, calls: _MainThreadCalls) -> None:
    """The Runner on a helper thread's loop; the task's sync code in this (main) thread."""
    crashed: list[BaseException] = []

    def drive() -> None:
        try:
            asyncio.run(_run_and_close(runner, item))
        except asyncio.CancelledError:
            pass  # interrupted: the runner has reported it
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            crashed.append(exc)
        finally:
            calls.close()

    loop_thread = threading.Thread(target=drive, name="airloop-task-loop", daemon=True)
    loop_thread.start()
    calls.serve()
    loop_thread.join()
    if crashed:
        raise crashed[0]


async def _run_and_close(runner: Runner, item: WorkItem) -> None:
    """Run one task; its resources (clients...) live as long as this worker call."""
    try:
        await runner.run(item)
    finally:
        await runner.resources.aclose()


async def _run_cancellable(runner: Runner, item: WorkItem) -> None:
    """Run on this process's private loop; INTERRUPT_SIGNAL cancels the task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(INTERRUPT_SIGNAL, task.cancel, INTERRUPTED)
    try:
        await _run_and_close(runner, item)
    finally:
        loop.remove_signal_handler(INTERRUPT_SIGNAL)
        # Between tasks a late interrupt must do nothing (its default would kill us).
        signal.signal(INTERRUPT_SIGNAL, signal.SIG_IGN)


def _runner(
    call: TaskCall,
    settings: Settings,
    on_started: Callable[[TaskStarted], None],
    sink: LogSink,
    pool: DaemonThreadPool | None,
    main_thread: _MainThreadCalls | None = None,
) -> tuple[Runner, list[TaskStarted | TaskFinished]]:
    events: list[TaskStarted | TaskFinished] = []

    def report(event: TaskStarted | TaskFinished) -> None:
        events.append(event)
        if isinstance(event, TaskStarted):
            on_started(event)

    async def run_sync(fn: Callable[..., Any], started: StartedHook, item: WorkItem) -> Any:
        if pool is None:
            assert main_thread is not None
            return await main_thread.run(fn, started, item)
        return await run_in_pool(pool, fn, item.context, started, item.timeout)

    runner = Runner(
        # Awaited before the call returns (the worker call is the callbacks' owner).
        callbacks=CallbackRunner(timeout=settings.callback_timeout, offload=in_thread),
        resources=Resources(settings),
        executor_name=call.executor,
        hostname=socket.gethostname(),
        report=report,
        report_threadsafe=report,
        sink_for=lambda _: sink,
        run_sync=run_sync,
        offloader=in_thread,
    )
    return runner, events


Reports = tuple[TaskStarted | None, TaskFinished]


def _outcome(call: TaskCall, events: list[TaskStarted | TaskFinished], since: int) -> Reports:
    """The start (if it got that far) and the end: the start report sent on the side
    channel may arrive after the result, so the result carries it too, with the secrets
    registered here since ``since`` that the scheduler did not ship (ADR 0032)."""
    started = next((e for e in events if isinstance(e, TaskStarted)), None)
    for event in reversed(events):
        if isinstance(event, TaskFinished):
            return started, _with_secrets(call, event, since)
    raise RuntimeError(f"{call.dag_id}/{call.task_id}: the runner reported no outcome")


def _learn_secrets(call: TaskCall, settings: Settings) -> int:
    """Before a task runs here: mask what the scheduler's process masks. Returns how
    many secrets this process knows then (later ones were registered while it ran)."""
    masking.set_sensitive_names(masking.parse_sensitive_names(settings.sensitive_var_conn_names))
    if call.secrets:
        masking.add_secrets(call.secrets)
    receive_environment(call.environment)
    return len(masking.secrets())


def _with_secrets(call: TaskCall, event: TaskFinished, since: int) -> TaskFinished:
    """Only what was registered while the task ran goes back: a shared Dask cluster does
    not hand one scheduler's secrets to another."""
    known = masking.secrets()
    if len(known) <= since:
        return event
    shipped = set(call.secrets)
    fresh = tuple(s for s in known[since:] if s not in shipped)
    return replace(event, secrets=fresh) if fresh else event


def _report_to_parent(event: TaskStarted) -> None:
    if _started_queue is not None:
        _started_queue.put(event)


def init_process(started_queue: Any, settings: Settings) -> None:
    """Pool initializer: where to report starts, the scheduler's settings; task logs at INFO."""
    global _started_queue, _settings
    _started_queue = started_queue
    _settings = settings
    logging.getLogger().setLevel(logging.INFO)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when work stops
    signal.signal(INTERRUPT_SIGNAL, signal.SIG_IGN)  # only meaningful while a task runs


def run_in_process(call: TaskCall) -> Reports:
    """Entry point in a pool process: one task, sync or async, on a private loop (an
    async task's in the main thread; a sync task's in a helper thread, the sync code
    itself in the main thread, off any loop)."""
    sink = FileSink(call.log_path)
    in_main = threading.current_thread() is threading.main_thread()
    pool = None if in_main else DaemonThreadPool(1, name="airloop-task")
    if _settings is None:
        raise RuntimeError("run_in_process runs in a pool started with init_process")
    calls = _MainThreadCalls() if in_main else None
    since = _learn_secrets(call, _settings)
    runner, events = _runner(call, _settings, _report_to_parent, sink, pool, calls)
    try:
        item = rebuild_item(call)
    except Exception as exc:  # noqa: BLE001 - reported as the task's failure
        return None, _with_secrets(call, _load_failure(call, exc, sink), since)
    try:
        with task_log_routing():
            if calls is not None and not item.operator.is_async:
                _run_sync_task(runner, item, calls)
            elif in_main:
                asyncio.run(_run_cancellable(runner, item))
            else:
                asyncio.run(_run_and_close(runner, item))
    except asyncio.CancelledError:
        pass  # interrupted: the runner has reported it
    finally:
        if pool is not None:
            pool.shutdown()
    return _outcome(call, events, since)


def _load_failure(call: TaskCall, exc: Exception, sink: LogSink) -> TaskFinished:
    from datetime import UTC, datetime

    from airloop.executors.runner import first_line

    message = masking.redact_text(f"cannot load the task in the worker: {first_line(exc)}")
    sink.line("ERROR", message)
    return TaskFinished(
        call.run_pk,
        TIKey(call.task_id, call.map_index),
        call.try_number,
        datetime.now(UTC),
        Outcome.FAILED,
        reason=message,
        retryable=False,
    )


def _report_to_dask(event: TaskStarted) -> None:
    from distributed import get_worker

    get_worker().log_event(
        DASK_STARTED_TOPIC,
        {
            "run_pk": event.run_pk,
            "task_id": event.key.task_id,
            "map_index": event.key.map_index,
            "try_number": event.try_number,
            "at": event.at.isoformat(),
            "hostname": event.hostname,
        },
    )


#: The Dask event topic workers publish "started" reports on.
DASK_STARTED_TOPIC = "airloop-task-started"


def run_on_dask(call: TaskCall, settings: Settings) -> Reports:
    """Dask entry for a sync task: runs in one of the worker's threads.

    Its own loop drives the Runner; the sync code runs in a helper thread so the
    execution timeout can fail the task (that thread is abandoned, as in-process).
    """
    return asyncio.run(run_on_dask_async(call, settings))


async def run_on_dask_async(call: TaskCall, settings: Settings) -> Reports:
    """Dask entry for an async task: a coroutine on the Dask worker's own event loop.

    ``settings`` travel with each call (a Dask cluster may serve several schedulers).
    """
    sink = FileSink(call.log_path)
    pool = DaemonThreadPool(1, name="airloop-task")
    since = _learn_secrets(call, settings)
    runner, events = _runner(call, settings, _report_to_dask, sink, pool)
    try:
        item = rebuild_item(call)
    except Exception as exc:  # noqa: BLE001 - reported as the task's failure
        return None, _with_secrets(call, _load_failure(call, exc, sink), since)
    try:
        with task_log_routing():
            await _run_and_close(runner, item)
    finally:
        pool.shutdown()
    return _outcome(call, events, since)
