"""``dag.test()`` / ``await dag.atest()`` / ``airloop dags test``: one run, in-process.

The run uses a throwaway SQLite database in a temporary folder (removed afterwards)
and the async engine, as ``airflow dags test`` runs a DAG without a scheduler. The
context's ``test_mode`` is True. Per-task results are printed like Airflow's; the
returned ``DagTestResult`` carries the run state, each task instance and its XCom.
The end of each failed task's log is printed before the table (the logs go with the
temporary folder).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from airloop.authoring.dag import DAG
from airloop.authoring.xcom import XCOM_RETURN_KEY
from airloop.core.states import DagRunState, TaskState
from airloop.engine.engine import Engine
from airloop.runtime import in_thread
from airloop.settings import Settings, load_settings


@dataclass(frozen=True, slots=True)
class TaskTestResult:
    """One task instance of a test run."""

    task_id: str
    map_index: int
    state: TaskState
    try_number: int
    duration: float | None
    error: str | None

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass(frozen=True, slots=True)
class DagTestResult:
    """What ``dag.test()`` returns: the run's state, its task instances and XComs."""

    dag_id: str
    run_id: str
    logical_date: datetime | None
    state: DagRunState
    duration: float
    tasks: tuple[TaskTestResult, ...]
    #: Every XCom (pushed ones and multiple_outputs' keys too) by (task_id, map_index, key).
    keyed_xcoms: Mapping[tuple[str, int, str], Any] = field(default_factory=dict)

    @property
    def xcoms(self) -> dict[tuple[str, int], Any]:
        """Return values by (task_id, map_index), decoded from their JSON."""
        return {(t, i): v for (t, i, k), v in self.keyed_xcoms.items() if k == XCOM_RETURN_KEY}

    @property
    def ok(self) -> bool:
        return self.state is DagRunState.SUCCESS

    @property
    def task_states(self) -> dict[str, TaskState]:
        """``{"task": state, "mapped[0]": state, ...}``."""
        return {t.label: t.state for t in self.tasks}

    def xcom(self, task_id: str, map_index: int = -1, key: str = XCOM_RETURN_KEY) -> Any:
        """A task instance's return value, or the XCom ``key`` it pushed (None if none)."""
        return self.keyed_xcoms.get((task_id, map_index, key))


def _check_no_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{what} was called inside a running event loop; in async code use 'await dag.atest(...)'"
    )


def run_dag_test(dag: DAG, **options: Any) -> DagTestResult:
    """``dag.test(...)``: run ``dag`` once on a new event loop (see ``arun_dag_test``)."""
    _check_no_loop("dag.test()")
    return asyncio.run(arun_dag_test(dag, **options))


async def arun_dag_test(
    dag: DAG,
    *,
    logical_date: datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    settings: Settings | None = None,
    output: IO[str] | None = None,
    quiet: bool = False,
) -> DagTestResult:
    """Run ``dag`` once in this process on a throwaway database; print and return results.

    ``logical_date`` defaults to now (naive: UTC); ``conf`` and ``params`` (params win)
    are the run's parameters, validated as a trigger's. ``settings`` are the base
    settings (default: ``load_settings()``); home, database and logs are replaced by a
    temporary folder, and tasks that name no executor run on the async executor.
    """
    when = logical_date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    given = {**(conf or {}), **(params or {})}
    dag.params.resolve(given)  # a bad parameter is an error before anything is created
    home = Path(await in_thread(tempfile.mkdtemp, None, "airloop-test-"))
    try:
        base = settings if settings is not None else await in_thread(load_settings)
        test_settings = base.model_copy(
            update={
                "home": home,
                "database_url": f"sqlite+aiosqlite:///{home / 'airloop.db'}",
                "logs_folder": home / "logs",
                "use_async": True,
            }
        )
        async with Engine(test_settings) as engine:
            run = await engine.start_run(
                dag, given, run_id=run_id, logical_date=when, test_mode=True
            )
            result = await asyncio.shield(run.done)
            rows = await engine.store.task_instances(result.run_pk)
            keyed = {
                (x.task_id, x.map_index, x.key): json.loads(x.value)
                for x in await engine.store.xcom_values(result.run_pk)
            }
            failed = {
                (r.task_id, r.map_index, r.try_number) for r in rows if r.state is TaskState.FAILED
            }
            # The logs go with the throwaway folder: keep what says why a task failed.
            logs = [
                (
                    f"{r.task_id}{'' if r.map_index < 0 else f'[{r.map_index}]'}",
                    r.try_number,
                    r.path,
                )
                for r in await engine.store.log_paths(result.run_pk)
                if (r.task_id, r.map_index, r.try_number) in failed
            ]
            failure_logs = await in_thread(_read_logs, logs)
    finally:
        await in_thread(shutil.rmtree, home, True)
    order = {task_id: i for i, task_id in enumerate(dag.task_dict)}
    tasks = tuple(
        sorted(
            (
                TaskTestResult(r.task_id, r.map_index, r.state, r.try_number, r.duration, r.error)
                for r in rows
            ),
            key=lambda t: (order.get(t.task_id, len(order)), t.map_index),
        )
    )
    outcome = DagTestResult(
        dag.dag_id, result.run_id, when, result.state, result.duration, tasks, keyed
    )
    if not quiet:
        stream = output or sys.stdout
        for text in failure_logs:
            stream.write(text)
        print_results(outcome, stream)
    return outcome


#: The end of a failed task's log that is printed (its traceback, usually).
LOG_TAIL_LINES = 60


def _read_logs(logs: list[tuple[str, int, str]]) -> list[str]:
    out = []
    for label, try_number, path in logs:
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        tail = lines[-LOG_TAIL_LINES:]
        out.append(f"--- {label} try {try_number} (log) ---\n" + "\n".join(tail) + "\n")
    return out


def print_results(result: DagTestResult, out: IO[str]) -> None:
    """Per-task lines (task, map index, state, try, duration, error), then the run."""
    header = ("task", "map", "state", "try", "duration", "error")
    lines = [
        (
            t.task_id,
            "" if t.map_index < 0 else str(t.map_index),
            t.state.value,
            str(t.try_number),
            f"{t.duration:.3f}s" if t.duration is not None else "",
            (t.error or "").splitlines()[0][:160] if t.error else "",
        )
        for t in result.tasks
    ]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header) - 1)]
    for row in (header, *lines):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write(("  ".join(cells) + "  " + row[-1]).rstrip() + "\n")
    when = result.logical_date.isoformat() if result.logical_date else "none"
    out.write(
        f"DAG run {result.dag_id}/{result.run_id} (logical date {when}): "
        f"{result.state.value} in {result.duration:.2f}s\n"
    )
    out.flush()


__all__ = ["DagTestResult", "TaskTestResult", "arun_dag_test", "print_results", "run_dag_test"]
