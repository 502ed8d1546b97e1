"""``ExternalTaskSensor`` and ``ExternalTaskMarker``: waiting on another DAG's run.

The sensor waits until tasks of another DAG (``external_task_id``,
``external_task_ids``, a task group's tasks, or, with none of them, the whole run)
are in ``allowed_states`` for the run at the same logical date (shifted by
``execution_delta``, or as ``execution_date_fn`` computes). When this process's
scheduler service runs the other DAG (it holds the database: ADR 0013) the sensor is
woken by the store's run events whenever that DAG's runs change, and does not poll;
otherwise it reads the store every ``poke_interval`` like any sensor (ADR 0036).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.authoring.sensor import BaseSensor
from airloop.core.states import DagRunState, TaskState
from airloop.exceptions import (
    AirloopError,
    DagDefinitionError,
    FailTask,
    SensorTimeout,
    SkipTask,
)
from airloop.store.run_events import Watch, task_store
from airloop.store.runs import Store
from airloop.store.service import ServiceStore


class ExternalTaskFailed(FailTask):
    """The external task (or run) reached one of ``failed_states``."""


def _states(
    where: str, name: str, values: Iterable[Any] | None, kind: type[TaskState] | type[DagRunState]
) -> list[Any]:
    if isinstance(values, str):
        raise DagDefinitionError(f"{where}: {name} must be a list of states, got {values!r}")
    found: list[Any] = []
    for value in values or ():
        try:
            found.append(kind(value))
        except ValueError:
            what = "task instance" if kind is TaskState else "DAG run"
            valid = ", ".join(s.value for s in kind)
            raise DagDefinitionError(
                f"{where}: {name} has {value!r}, not a {what} state (one of: {valid})"
            ) from None
    return found


class ExternalTaskSensor(BaseSensor):
    """Wait for a task, tasks, a task group or a whole run of another DAG (Airflow's
    sensor and arguments; matched on the logical date, as in Airflow 3)."""

    template_fields: ClassVar[Sequence[str]] = (
        "external_dag_id",
        "external_task_id",
        "external_task_ids",
        "external_task_group_id",
    )

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        external_task_ids: Iterable[str] | None = None,
        external_task_group_id: str | None = None,
        allowed_states: Iterable[str] | None = None,
        skipped_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        execution_delta: timedelta | None = None,
        execution_date_fn: Callable[..., Any] | None = None,
        check_existence: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"sensor {self.task_id!r}"
        if not isinstance(external_dag_id, str) or not external_dag_id:
            raise DagDefinitionError(f"{where}: external_dag_id must be a DAG id (a string)")
        if external_task_id is not None and external_task_ids is not None:
            raise DagDefinitionError(
                f"{where}: give external_task_id or external_task_ids, not both"
            )
        if isinstance(external_task_ids, str):
            raise DagDefinitionError(f"{where}: external_task_ids must be a list of task ids")
        ids = [external_task_id] if external_task_id is not None else external_task_ids
        task_ids = list(ids) if ids is not None else None
        if task_ids is not None and len(set(task_ids)) != len(task_ids):
            raise DagDefinitionError(f"{where}: external_task_ids has duplicates: {task_ids}")
        if task_ids is not None and external_task_group_id is not None:
            raise DagDefinitionError(
                f"{where}: give external_task_id(s) or external_task_group_id, not both"
            )
        if execution_delta is not None and execution_date_fn is not None:
            raise DagDefinitionError(
                f"{where}: give execution_delta or execution_date_fn, not both"
            )
        if execution_delta is not None and not isinstance(execution_delta, timedelta):
            raise DagDefinitionError(f"{where}: execution_delta must be a timedelta")
        if execution_date_fn is not None and not callable(execution_date_fn):
            raise DagDefinitionError(f"{where}: execution_date_fn must be callable")
        per_task = task_ids is not None or external_task_group_id is not None
        kind: type[TaskState] | type[DagRunState] = TaskState if per_task else DagRunState
        self.allowed_states = _states(where, "allowed_states", allowed_states, kind) or [
            kind("success")
        ]
        self.skipped_states = _states(where, "skipped_states", skipped_states, kind)
        self.failed_states = _states(where, "failed_states", failed_states, kind)
        overlap = set(self.allowed_states) & (set(self.failed_states) | set(self.skipped_states))
        if overlap:
            names = ", ".join(sorted(s.value for s in overlap))
            raise DagDefinitionError(
                f"{where}: {names} is in allowed_states and in failed_states or skipped_states"
            )
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = task_ids
        self.external_task_group_id = external_task_group_id
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.check_existence = check_existence

    # -- what to wait for -------------------------------------------------------------

    def _where(self) -> str:
        return f"sensor {self.task_id!r}"

    def logical_dates(self, context: Context) -> list[datetime]:
        """The external runs' logical dates this try waits for."""
        try:
            mine = context.logical_date
        except KeyError:
            raise AirloopError(
                f"{self._where()}: this run has no logical date to match the external "
                f"DAG {self.external_dag_id!r}'s runs on"
            ) from None
        if self.execution_delta is not None:
            return [mine - self.execution_delta]
        if self.execution_date_fn is None:
            return [mine]
        result = _call_date_fn(self.execution_date_fn, mine, context)
        values = list(result) if isinstance(result, (list, tuple)) else [result]
        dates: list[datetime] = []
        for value in values:
            if not isinstance(value, datetime):
                raise AirloopError(
                    f"{self._where()}: execution_date_fn returned {value!r}, not a datetime "
                    "(or a list of them)"
                )
            dates.append(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
        return dates

    async def poke(self, context: Context) -> bool:  # type: ignore[override]  # async poke
        """One check (``execute`` does not call it: it keeps one store for its wait)."""
        async with task_store() as (store, _):
            return await self._check(store, context, None)

    async def _check(self, store: Store, context: Context, watch: Watch | None) -> bool:
        """Are the external tasks (or runs) there yet? Fails or skips the sensor when
        they are in failed_states or skipped_states. ``watch`` follows the runs found."""
        dates = self.logical_dates(context)
        if self.check_existence:
            await self._check_existence(store)
        states: list[Any] = []
        for when in dates:
            # Shared: many sensors on one DAG woken by one change make one read each.
            reads = store.events.reads
            dag_id = self.external_dag_id
            row = await reads.read(
                ("run_at", dag_id, when), functools.partial(store.find_run_at, dag_id, when)
            )
            if row is None:
                states.append(None)
                continue
            whole_run = self.external_task_ids is None and self.external_task_group_id is None
            if watch is not None and row.id not in watch.run_pks:
                # Woken by the run's state, and by its watched tasks' changes (a group's:
                # any task's, its members are only known from the rows).
                watch.add_run(row.id, () if whole_run else self.external_task_ids)
            if whole_run:
                states.append(row.state)
            elif row.state is DagRunState.QUEUED:
                states.append(None)  # not started (or cleared): its tasks are not there yet
            elif self.external_task_ids is not None:
                task_ids = tuple(self.external_task_ids)
                found = await reads.read(
                    ("task_states", row.id, task_ids),
                    functools.partial(store.task_states, row.id, task_ids),
                )
                states.extend(self._of_tasks(found, when))
            else:
                states.extend(
                    ti.state
                    for ti in self._of_group(
                        await reads.read(
                            ("task_instances", row.id),
                            functools.partial(store.task_instances, row.id),
                        ),
                        when,
                    )
                )
        ids = self._what()
        context.log.info(
            "poking for %s of DAG %s at %s: %s",
            ids,
            self.external_dag_id,
            ", ".join(d.isoformat() for d in dates),
            ", ".join(str(s) for s in states) or "-",
        )
        if any(s in self.failed_states for s in states):
            message = f"{self._where()}: the external {ids} of DAG {self.external_dag_id!r} failed"
            if self.soft_fail:
                raise SkipTask(message + " (soft_fail)")
            raise ExternalTaskFailed(message)
        if any(s in self.skipped_states for s in states):
            raise SkipTask(
                f"{self._where()}: the external {ids} of DAG {self.external_dag_id!r} was skipped"
            )
        return bool(states) and all(s in self.allowed_states for s in states)

    def _what(self) -> str:
        if self.external_task_group_id is not None:
            return f"task group {self.external_task_group_id!r}"
        if self.external_task_ids is not None:
            return f"tasks {self.external_task_ids}"
        return "run"

    def _of_group(self, tis: list[Any], when: datetime) -> list[Any]:
        """The external run's task instances of the group (REMOVED ones aside)."""
        prefix = f"{self.external_task_group_id}."
        found = [
            ti for ti in tis if ti.task_id.startswith(prefix) and ti.state is not TaskState.REMOVED
        ]
        if not found:
            raise AirloopError(
                f"{self._where()}: the run of DAG {self.external_dag_id!r} at "
                f"{when.isoformat()} has no task group {self.external_task_group_id!r}"
            )
        return found

    def _of_tasks(self, found: list[tuple[str, int, TaskState]], when: datetime) -> list[TaskState]:
        """The states of the external tasks' instances (REMOVED ones aside)."""
        assert self.external_task_ids is not None
        missing = set(self.external_task_ids) - {task_id for task_id, _, _ in found}
        if missing:
            raise AirloopError(
                f"{self._where()}: DAG {self.external_dag_id!r} has no task "
                f"{', '.join(sorted(missing))} (in its run at {when.isoformat()})"
            )
        return [state for _, _, state in found if state is not TaskState.REMOVED]

    async def _check_existence(self, store: Store) -> None:
        if self.external_dag_id not in await ServiceStore(store).paused():
            raise AirloopError(
                f"{self._where()}: the external DAG {self.external_dag_id!r} does not exist "
                "(not in the dag table; check_existence=True)"
            )

    # -- waiting ---------------------------------------------------------------------

    async def execute(self, context: Context) -> Any:
        async with task_store() as (store, events_see_all):
            await self._wait(store, events_see_all, context)

    async def _wait(self, store: Store, events_see_all: bool, context: Context) -> None:
        """Check; then wait for the external DAG's runs to change (when this process
        writes them all) or for ``poke_interval`` (otherwise); until done or timeout."""
        started = time.monotonic()
        deadline = started + self.timeout
        rng = random.Random()
        checks = 0
        if events_see_all:
            context.log.info("waiting on DAG %s (woken when its runs change)", self.external_dag_id)
        with store.events.watch(dag_id=self.external_dag_id) as watch:
            while True:
                checks += 1
                if await self._check(store, context, watch):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    message = (
                        f"sensor {self.task_id!r} timed out after "
                        f"{time.monotonic() - started:.1f}s ({checks} checks, "
                        f"timeout {self.timeout:g}s)"
                    )
                    if self.soft_fail:
                        raise SkipTask(message)
                    raise SensorTimeout(message)
                if not events_see_all:
                    await asyncio.sleep(min(self._next_interval(checks, rng), left))
                    continue
                try:
                    async with asyncio.timeout(left):
                        await watch.wait()
                except TimeoutError:
                    continue  # one last check, then the timeout above


def _call_date_fn(fn: Callable[..., Any], logical_date: datetime, context: Context) -> Any:
    """``fn(logical_date, **context keys it names)``, as Airflow calls it."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn(logical_date)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return fn(logical_date, **{k: context[k] for k in context})
    named = {p.name for p in parameters[1:]}
    return fn(logical_date, **{k: context[k] for k in named if k in context})


class ExternalTaskMarker(BaseOperator):
    """Marks that a task of another DAG depends on this one (Airflow's marker).

    It does nothing when it runs. ``airloop tasks clear`` follows it: clearing the
    marker clears ``external_task_id`` in the external DAG's run at ``logical_date``
    (as rendered when the marker ran), recursively up to ``recursion_depth`` levels
    (see airloop.service.markers).
    """

    #: recursion_depth is not a template: listed so that it is stored with the
    #: rendered values, which ``airloop tasks clear`` reads to follow the marker.
    template_fields: ClassVar[Sequence[str]] = (
        "external_dag_id",
        "external_task_id",
        "logical_date",
        "recursion_depth",
    )

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | datetime | None = "{{ logical_date.isoformat() }}",
        recursion_depth: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        if not isinstance(external_dag_id, str) or not external_dag_id:
            raise DagDefinitionError(f"{where}: external_dag_id must be a DAG id (a string)")
        if not isinstance(external_task_id, str) or not external_task_id:
            raise DagDefinitionError(f"{where}: external_task_id must be a task id (a string)")
        if isinstance(logical_date, datetime):
            logical_date = logical_date.isoformat()
        elif logical_date is not None and not isinstance(logical_date, str):
            raise DagDefinitionError(
                f"{where}: logical_date should be a datetime or a templated string, "
                f"got {logical_date!r}"
            )
        if isinstance(recursion_depth, bool) or not isinstance(recursion_depth, int):
            raise DagDefinitionError(f"{where}: recursion_depth must be an integer")
        if recursion_depth <= 0:
            raise DagDefinitionError(f"{where}: recursion_depth should be a positive integer")
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.logical_date = logical_date
        self.recursion_depth = recursion_depth

    async def execute(self, context: Context) -> None:
        context.log.info(
            "marker: task %s of DAG %s at %s depends on this one",
            self.external_task_id,
            self.external_dag_id,
            self.logical_date,
        )


__all__ = ["ExternalTaskFailed", "ExternalTaskMarker", "ExternalTaskSensor"]
