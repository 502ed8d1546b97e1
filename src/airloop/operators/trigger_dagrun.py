"""``TriggerDagRunOperator``: queue a run of another DAG, and optionally wait for it.

The run is queued as ``airloop dags trigger`` queues one (a ``queued`` dag_run row the
scheduler service starts); its id is pushed as the XCom ``trigger_run_id`` (and its
logical date as ``trigger_logical_date_iso``), as in Airflow. With
``wait_for_completion`` the task waits for the run to reach one of ``allowed_states``
(success) or ``failed_states`` (failure). When this process's scheduler service runs
the target (it holds the database: ADR 0013), the wait is woken by the store's run
events the moment the run changes; otherwise the store is read every ``poke_interval``
(ADR 0036). The run is checkpointed before the wait: a try resumed after a restart
waits for it again instead of queueing another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from airloop.authoring.airflow_args import Unsupported
from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator, _seconds
from airloop.core.states import DagRunState
from airloop.exceptions import AirloopError, DagDefinitionError, RunExistsError, SkipTask
from airloop.store.records import DagRunRow
from airloop.store.run_events import local_store, task_store
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

#: The XCom keys Airflow's operator pushes.
XCOM_RUN_ID = "trigger_run_id"
XCOM_LOGICAL_DATE_ISO = "trigger_logical_date_iso"


class DagRunFailed(AirloopError):
    """The triggered run ended in one of ``failed_states``."""


def run_states(where: str, name: str, values: Iterable[Any] | None) -> list[DagRunState]:
    """DagRunStates from strings or states; a clear error naming the bad one."""
    states: list[DagRunState] = []
    if isinstance(values, str):
        raise DagDefinitionError(f"{where}: {name} must be a list of states, got {values!r}")
    for value in values or ():
        try:
            states.append(DagRunState(value))
        except ValueError:
            valid = ", ".join(s.value for s in DagRunState)
            raise DagDefinitionError(
                f"{where}: {name} has {value!r}, not a DAG run state (one of: {valid})"
            ) from None
    return states


def parse_logical_date(where: str, value: Any) -> datetime | None:
    """A rendered ``logical_date``: a datetime, an ISO 8601 string (naive = UTC) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise AirloopError(
                f"{where}: logical_date {value!r} is not an ISO 8601 date and time"
            ) from None
    if not isinstance(value, datetime):
        raise AirloopError(f"{where}: logical_date must be a datetime or a string, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class TriggerDagRunOperator(BaseOperator):
    """Queue a run of ``trigger_dag_id`` (Airflow's operator and arguments).

    ``trigger_run_id`` (default ``manual__<logical date>``), ``conf`` (the run's params,
    validated against the target DAG's when the run starts) and ``logical_date``
    (default: now) are templated. An existing run with that id or logical date is an
    error, unless ``reset_dag_run`` (the finished run is cleared and runs again; a
    queued one is used as it is; a running one is an error) or, without it,
    ``skip_when_already_exists`` (the task is skipped).
    """

    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = {
        "execution_date": Unsupported(
            "execution_date (Airflow 2's name): use logical_date", lambda v: v is None, "None"
        ),
        "deferrable": Unsupported("deferrable operators", lambda v: v is False, "False"),
    }
    template_fields: ClassVar[Sequence[str]] = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
    )

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: Mapping[str, Any] | None = None,
        logical_date: str | datetime | None = None,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: timedelta | float = 60,
        allowed_states: Iterable[str | DagRunState] | None = None,
        failed_states: Iterable[str | DagRunState] | None = None,
        skip_when_already_exists: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        if not isinstance(trigger_dag_id, str) or not trigger_dag_id:
            raise DagDefinitionError(f"{where}: trigger_dag_id must be a DAG id (a string)")
        if conf is not None and not isinstance(conf, Mapping):
            raise DagDefinitionError(f"{where}: conf must be a dict, got {conf!r}")
        if logical_date is not None and not isinstance(logical_date, (str, datetime)):
            raise DagDefinitionError(
                f"{where}: logical_date must be a datetime or a string, got {logical_date!r}"
            )
        interval = _seconds(f"{where}: poke_interval", poke_interval)
        assert interval is not None
        if interval <= 0:
            raise DagDefinitionError(f"{where}: poke_interval must be > 0")
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = dict(conf) if conf is not None else None
        self.logical_date = logical_date
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = interval
        self.allowed_states = run_states(where, "allowed_states", allowed_states) or [
            DagRunState.SUCCESS
        ]
        self.failed_states = (
            run_states(where, "failed_states", failed_states)
            if failed_states is not None
            else [DagRunState.FAILED]
        )
        both = set(self.allowed_states) & set(self.failed_states)
        if both:
            names = ", ".join(sorted(s.value for s in both))
            raise DagDefinitionError(
                f"{where}: {names} is in both allowed_states and failed_states"
            )
        self.skip_when_already_exists = skip_when_already_exists

    async def execute(self, context: Context) -> None:
        async with task_store() as (store, events_see_all):
            await self._trigger(store, events_see_all, context)

    async def _trigger(self, store: Store, events_see_all: bool, context: Context) -> None:
        where = f"task {self.task_id!r}"
        service = ServiceStore(store)
        dag_id = self.trigger_dag_id
        known = await service.paused()
        if dag_id not in known:
            raise AirloopError(
                f"{where}: DAG {dag_id!r} to trigger is not known to the scheduler (it is "
                "not in the dag table: is its file in the scheduler's DAG folder?)"
            )
        when = parse_logical_date(where, self.logical_date) or datetime.now(UTC)
        run_id = self.trigger_run_id or f"manual__{when.isoformat()}"
        conf = dict(self.conf or {})
        try:
            json.dumps(conf)
        except (TypeError, ValueError) as exc:
            raise AirloopError(
                f"{where}: conf must be JSON (it is the run's params): {exc}"
            ) from None
        attached = await _attached(store, context, dag_id)
        try:
            if attached is not None:
                run_pk, run_id = attached.id, attached.run_id
                when = attached.logical_date or when
                context.log.info("re-attaching to run %s of DAG %s (checkpoint)", run_id, dag_id)
            else:
                run_pk = await service.queue_run(dag_id, run_id, conf, when)
                context.log.info("queued run %s of DAG %s", run_id, dag_id)
        except RunExistsError as exc:
            # Airflow's order: reset_dag_run first, then skip_when_already_exists.
            if not self.reset_dag_run:
                if self.skip_when_already_exists:
                    raise SkipTask(f"{where}: {exc} (skip_when_already_exists)") from None
                raise AirloopError(f"{where}: {exc} (reset_dag_run=True runs it again)") from None
            row = await _existing(store, dag_id, run_id, when)
            if row is None:
                raise  # the conflicting run went away meanwhile: say what happened
            run_pk, run_id, when = row.id, row.run_id, row.logical_date or when
            await _reset(service, row, where)
            context.log.info("reset run %s of DAG %s (reset_dag_run)", run_id, dag_id)
        if context.ti.pushed is not None:
            context.ti.xcom_push(XCOM_RUN_ID, run_id)
            context.ti.xcom_push(XCOM_LOGICAL_DATE_ISO, when.isoformat())
        if not self.wait_for_completion:
            return
        if attached is None and local_store() is store:
            # Durable before waiting: a try resumed after a restart waits for this run
            # instead of queueing another (one on the engine's loop: its saver's).
            await context.checkpoint.save({"run_pk": run_pk, "dag_id": dag_id})
        state = await self._wait(store, run_pk, events_see_all, context)
        if state in self.failed_states:
            raise DagRunFailed(f"{dag_id} failed with failed state {state.value} (run {run_id})")
        context.log.info("run %s of DAG %s ended %s", run_id, dag_id, state.value)

    async def _wait(
        self, store: Store, run_pk: int, events_see_all: bool, context: Context
    ) -> DagRunState:
        """Until the run is in an allowed or failed state: woken by the store's events
        when this process runs it, else reading the store every poke_interval."""
        done = {*self.allowed_states, *self.failed_states}
        # The run's state only: its task instances' changes do not wake this wait.
        watch = store.events.watch(run_pk=run_pk, task_ids=()) if events_see_all else None
        with watch or contextlib.nullcontext():
            if watch is not None:
                context.log.info("waiting for the run (woken when it changes)")
            else:
                context.log.info("waiting for the run (checked every %gs)", self.poke_interval)
            while True:
                row = await store.get_run(run_pk)
                if row is None:
                    raise AirloopError(
                        f"task {self.task_id!r}: the triggered run of {self.trigger_dag_id!r} "
                        "was deleted while waiting for it"
                    )
                if row.state in done:
                    return row.state
                if watch is not None:
                    await watch.wait()
                else:
                    await asyncio.sleep(self.poke_interval)


async def _attached(store: Store, context: Context, dag_id: str) -> DagRunRow | None:
    """The run this try queued before airloop restarted (its checkpoint), if any."""
    saved = context.checkpoint.value
    if not isinstance(saved, dict) or saved.get("dag_id") != dag_id:
        return None
    return await store.get_run(int(saved["run_pk"]))


async def _existing(store: Store, dag_id: str, run_id: str, when: datetime) -> DagRunRow | None:
    """The run a queue_run collided with: by run id, else by logical date."""
    rows = await store.find_runs(run_id, dag_id)
    if rows:
        return rows[0]
    return await store.find_run_at(dag_id, when)


async def _reset(service: ServiceStore, row: DagRunRow, where: str) -> None:
    """Run an existing run again (reset_dag_run): clear every task instance of it."""
    if row.state is DagRunState.QUEUED:
        return  # not started yet: it runs as it is
    if row.state is DagRunState.RUNNING:
        raise AirloopError(
            f"{where}: cannot reset run {row.run_id!r} of DAG {row.dag_id!r}: it is running "
            "(reset_dag_run clears finished runs)"
        )
    if not await service.clear(row.id, None, failed_only=False):
        # A finished run without task instances (failed before it started): queue it.
        await service.set_run_state(row.id, DagRunState.QUEUED)
        service.events.run_queued(row.dag_id, row.id)


__all__ = ["DagRunFailed", "TriggerDagRunOperator"]
