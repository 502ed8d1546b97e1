"""The executor API every backend implements; the scheduler sees nothing else.

The scheduler decides from the class's declared properties, never from isinstance
checks on concrete classes. Executors only report (through the OutcomeChannel);
the scheduler is the only writer of state.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from airloop.authoring.context import Checkpoint, Context, DagRunInfo, TaskInstanceInfo
from airloop.authoring.dag import DAG
from airloop.authoring.operator import BaseOperator, TaskSettings
from airloop.authoring.params import merge_task_params
from airloop.authoring.xcom import Pushed
from airloop.connections.sources import environment_to_ship
from airloop.core import masking
from airloop.core.specs import TIKey
from airloop.executors.events import OutcomeChannel

#: The logger task code gets as ``context.log`` / ``log``.
TASK_LOGGER = logging.getLogger("airloop.task")


@dataclass(frozen=True, slots=True)
class TaskCall:
    """A work item by reference: what another process needs to run it.

    The DAG file's path and ids instead of pickled closures; ``bound`` holds the task's
    resolved arguments (plain values: upstream outputs, literals from the DAG file).
    """

    dag_file: str
    dag_id: str
    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    run_pk: int
    run_id: str
    run_type: str
    logical_date: datetime | None
    params: dict[str, Any]
    data_interval: tuple[datetime, datetime] | None
    bound: Any
    timeout: float | None
    xcom_max_bytes: int
    log_path: str
    executor: str
    #: prev_data_interval_start_success, prev_data_interval_end_success,
    #: prev_start_date_success (looked up by the engine when the run started).
    previous_success: tuple[datetime | None, datetime | None, datetime | None] = (
        None,
        None,
        None,
    )
    test_mode: bool = False
    #: The secrets registered in the scheduler's process, masked in the worker too
    #: (ADR 0032).
    secrets: tuple[str, ...] = ()
    #: The scheduler's AIRLOOP_CONN_* / AIRLOOP_VAR_* (ADR 0031): a worker started
    #: before they were set still finds the same connections.
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One try of one task instance, ready to run: operator materialized, context built."""

    run_pk: int
    key: TIKey
    try_number: int
    operator: BaseOperator
    context: Context
    timeout: float | None
    log_path: str
    xcom_max_bytes: int
    executor: str = "async"
    #: The arguments ``operator`` was rebuilt from (see AbstractOperator.bind).
    bound: Any = None
    #: ``str(context.ti)``, formatted once by ``build``: log lines, task names and
    #: the task label context variable all use it (three times per try at least).
    label: str = ""

    @classmethod
    def build(
        cls,
        *,
        dag: DAG,
        operator: BaseOperator,
        run: DagRunInfo,
        run_pk: int,
        map_index: int,
        try_number: int,
        log_path: str,
        xcom_max_bytes: int,
        executor: str,
        bound: Any,
        checkpoint: Checkpoint | None = None,
        settings: TaskSettings | None = None,
    ) -> WorkItem:
        """The one place a work item and its task's context are put together.

        ``settings``: the DAG node's resolved settings when the caller has them at
        hand (looked up from the DAG otherwise).
        """
        if settings is None:
            settings = dag.get_task(operator.task_id).settings
        ti = TaskInstanceInfo(
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=operator.task_id,
            map_index=map_index,
            try_number=try_number,
            max_tries=settings.retries + 1,
            log_path=log_path,
            xcoms=operator.pullable_xcoms,
            pushed=Pushed(operator.task_id, xcom_max_bytes),
        )
        return cls(
            run_pk=run_pk,
            key=TIKey(operator.task_id, map_index),
            try_number=try_number,
            operator=operator,
            context=Context(
                dag=dag,
                task=operator,
                ti=ti,
                dag_run=run,
                log=TASK_LOGGER,
                checkpoint=checkpoint or Checkpoint(),
                task_params=(
                    None
                    if operator.task_params is None
                    else merge_task_params(run.params, dag.params, operator.task_params)
                ),
            ),
            timeout=settings.execution_timeout,
            log_path=log_path,
            xcom_max_bytes=xcom_max_bytes,
            executor=executor,
            bound=bound,
            label=str(ti),
        )

    @property
    def ref(self) -> tuple[int, TIKey]:
        return (self.run_pk, self.key)

    def call(self) -> TaskCall:
        ti, run = self.context.ti, self.context.dag_run
        return TaskCall(
            dag_file=self.context.dag.fileloc,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            map_index=ti.map_index,
            try_number=ti.try_number,
            max_tries=ti.max_tries,
            run_pk=self.run_pk,
            run_id=run.run_id,
            run_type=run.run_type,
            logical_date=run.logical_date,
            params=dict(run.params),
            data_interval=(
                (run.data_interval_start, run.data_interval_end)
                if run.data_interval_start is not None and run.data_interval_end is not None
                else None
            ),
            bound=self.bound,
            timeout=self.timeout,
            xcom_max_bytes=self.xcom_max_bytes,
            log_path=self.log_path,
            executor=self.executor,
            previous_success=(
                run.prev_data_interval_start_success,
                run.prev_data_interval_end_success,
                run.prev_start_date_success,
            ),
            test_mode=run.test_mode,
            secrets=masking.secrets(),
            environment=environment_to_ship(),
        )


class Executor(ABC):
    """Runs work items and reports TaskStarted / TaskFinished through the channel."""

    name: ClassVar[str]
    #: Work runs on the scheduler's event loop (so blocking there blocks everything).
    runs_on_scheduler_loop: ClassVar[bool]
    #: ``async def`` tasks are awaited as coroutines, not wrapped in a private loop.
    runs_coroutines_natively: ClassVar[bool]
    #: Work keeps running if the scheduler process dies.
    survives_scheduler_restart: ClassVar[bool] = False
    #: Work that did not stop by the shutdown deadline and was left behind.
    abandoned: int = 0

    @property
    @abstractmethod
    def capacity(self) -> int | None:
        """How many task instances can run at once (None: bounded only by memory)."""

    @property
    @abstractmethod
    def running(self) -> int:
        """How many task instances are submitted and not yet reported finished."""

    @abstractmethod
    async def start(self, channel: OutcomeChannel) -> None:
        """Get ready to accept work; call from the task that will later call shutdown."""

    @abstractmethod
    def submit(self, item: WorkItem) -> None:
        """Start ``item``; never blocks the loop."""

    @abstractmethod
    def cancel(self, ref: tuple[int, TIKey], reason: str) -> bool:
        """Ask one running task instance to stop; it reports a failure saying ``reason``."""

    @abstractmethod
    def cancel_all(self, reason: str) -> int:
        """Ask every running task instance to stop. Returns how many were asked."""

    @abstractmethod
    async def shutdown(self, deadline: float) -> None:
        """Stop: cancel what still runs, wait until ``deadline`` (loop time) at most."""
