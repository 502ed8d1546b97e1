"""DAG callbacks: run by the engine once a run's final state is written (ADR 0024).

The scheduler hands over each run that ended (success or failed) after the tick that
finished it has been committed; the callbacks then run here as owned tasks, off the
scheduler's critical path: the tick never waits for them. Sync callbacks run in a small
bounded pool of their own, async ones on the loop; each has ``callback_timeout``. An
error or a timeout is logged with its traceback in the engine's log and changes no
state. At shutdown they get until the engine's deadline, then are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airloop.authoring.callbacks import CallbackContext
from airloop.authoring.context import DagRunInfo
from airloop.authoring.dag import DAG
from airloop.core.states import DagRunState
from airloop.executors.callbacks import CallbackRunner
from airloop.executors.threads import DaemonThreadPool

log = logging.getLogger(__name__)

#: Threads for sync DAG callbacks (they are few: one per finished run at most).
DAG_CALLBACK_THREADS = 4


def run_context(dag: DAG, info: DagRunInfo, state: DagRunState, reason: str) -> CallbackContext:
    """What a DAG callback receives (Airflow's keys for a DAG-level callback)."""
    context: dict[str, Any] = {
        "dag": dag,
        "dag_run": info,
        "run_id": info.run_id,
        "params": info.params,
        "reason": reason,
        "state": state.value,
        "data_interval_start": info.data_interval_start,
        "data_interval_end": info.data_interval_end,
    }
    if info.logical_date is not None:
        context["logical_date"] = info.logical_date
        context["ds"] = info.logical_date.strftime("%Y-%m-%d")
        context["ts"] = info.logical_date.isoformat()
    return CallbackContext(context)


class DagCallbacks:
    """The engine's owner of running DAG callbacks."""

    def __init__(self, timeout: float) -> None:
        self._pool = DaemonThreadPool(DAG_CALLBACK_THREADS, name="airloop-dag-callback")

        def offload(fn: Any, /, *args: Any) -> Any:
            return asyncio.wrap_future(self._pool.submit(fn, *args))

        self._runner = CallbackRunner(timeout=timeout, offload=offload, pool=self._pool)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def run_finished(self, dag: DAG, info: DagRunInfo, state: DagRunState, reason: str) -> None:
        """Start the callbacks ``state`` fires (none: nothing to do). Never blocks."""
        if state is DagRunState.SUCCESS:
            kind, callbacks = "on_success_callback", dag.on_success_callback
        elif state is DagRunState.FAILED:
            kind, callbacks = "on_failure_callback", dag.on_failure_callback
        else:
            return
        if not callbacks:
            return
        label = f"{info.dag_id}/{info.run_id}"

        def error(message: str, trace: str) -> None:
            log.error("DAG run %s: %s\n%s", label, message, trace.rstrip())

        coro = self._runner.run(
            callbacks, run_context(dag, info, state, reason), kind=f"DAG {kind}", error=error
        )
        task = asyncio.create_task(coro, name=f"{label} {kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, deadline: float) -> None:
        """Wait for running callbacks until ``deadline`` (loop time), cancel the rest."""
        loop = asyncio.get_running_loop()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - loop.time()))
            for task in late:
                log.warning("%s still running at shutdown; cancelled", task.get_name())
                task.cancel("the engine is closing")
            if late:
                await asyncio.wait(late, timeout=1.0)
        for task in self._runner.abandoned:
            task.cancel("the engine is closing")
        self._pool.shutdown()
