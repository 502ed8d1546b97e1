"""The Engine: store, executor, scheduler and task logs, inside a loop you already have."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from airloop.authoring.context import DagRunInfo
from airloop.authoring.dag import DAG
from airloop.core.admission import Admission
from airloop.core.masking import parse_sensitive_names, set_sensitive_names
from airloop.core.planner import RunPlanner
from airloop.core.pools import PoolUse
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import DagRunState, TaskState
from airloop.engine.active_run import ActiveRun, RunResult
from airloop.engine.dag_callbacks import DagCallbacks
from airloop.engine.executor_registry import ExecutorRegistry
from airloop.engine.gc_policy import GcPolicy
from airloop.engine.scheduler import Scheduler
from airloop.engine.specs import build_specs, initial_rows
from airloop.engine.watchdog import LoopWatchdog
from airloop.exceptions import AirloopError, RunExistsError
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel
from airloop.executors.resources import Resources
from airloop.executors.task_logs import TaskLogWriter
from airloop.runtime import in_thread
from airloop.settings import Settings, load_settings
from airloop.store.checkpoints import CheckpointWriter
from airloop.store.records import DagRunRow
from airloop.store.run_events import bind_local_store
from airloop.store.runs import Store

log = logging.getLogger(__name__)

ProgressHook = Callable[[ActiveRun], None]


class Engine:
    """Run DAGs from async code::

        async with Engine(settings) as engine:
            result = await engine.run(dag, params={"n": 3})

    Without ``settings`` the engine reads them as the CLI does (``load_settings()``:
    the settings file, then AIRLOOP_* variables). One engine owns one scheduler loop
    task, one executor and one store connection pool. ``request_shutdown`` (wired to
    SIGINT/SIGTERM by the CLI) stops starting tasks, cancels running ones and fails
    their runs within the grace period.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()
        # Process-wide, as the masker is (ADR 0032); workers apply the shipped settings.
        set_sensitive_names(parse_sensitive_names(self.settings.sensitive_var_conn_names))
        self._hostname = socket.gethostname()
        self._store: Store | None = None
        self._logs: TaskLogWriter | None = None
        self._executors: ExecutorRegistry | None = None
        self._scheduler: Scheduler | None = None
        self._serve: asyncio.Task[None] | None = None
        #: Pools, each DAG's max_active_tasks and executor capacity, over all runs.
        self._admission = Admission(self.settings.pools)
        self.watchdog: LoopWatchdog | None = None
        self.resources: Resources | None = None
        self._checkpoints: CheckpointWriter | None = None
        self._dag_callbacks: DagCallbacks | None = None
        #: The collector's tuning while runs are active (ADR 0044).
        self._gc = GcPolicy(self.settings.gc_policy)
        #: Task coroutines that ignored cancellation at shutdown (the process should
        #: exit without waiting for them: see the CLI).
        self.abandoned = 0

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("use the Engine inside 'async with'")
        return self._store

    @property
    def pools(self) -> Mapping[str, int]:
        """Each pool's size as this engine admits by it."""
        return self._admission.pools.sizes

    def resize_pools(
        self, pools: Mapping[str, int], shares: Mapping[str, int] | None = None
    ) -> None:
        """Take new pool sizes (the scheduler service reads them from the ``slot_pool``
        table on each heartbeat): running task instances keep their slots, the next
        tick admits by the new sizes. A pool no longer listed admits nothing more.
        ``shares``: with several schedulers, the slots of each pool this engine may
        fill (``airloop.service.pool_share``, a pool left out: none); None keeps the
        current shares (none, i.e. whole pools, until some are given), so a pass that
        only refreshes the sizes cannot undo them."""
        ledger = self._admission.pools
        if shares is None:
            shares = ledger.shares
        if (
            dict(pools) == ledger.sizes
            and (None if shares is None else dict(shares)) == ledger.shares
        ):
            return
        ledger.resize(pools, shares)
        if self._scheduler is not None:
            self._scheduler.pools_changed()

    @property
    def pool_shares(self) -> dict[str, int] | None:
        """This engine's share of each pool (several schedulers), or None."""
        return self._admission.pools.shares

    def pool_usage(self) -> dict[str, PoolUse]:
        """Per pool: slots held by queued and running task instances, slots ready ones
        wait for (what a scheduler reports to share pools, ADR 0041)."""
        return self._admission.pool_usage()

    def short_pools(self) -> set[str]:
        """Pools whose next ready task instance does not fit in the free slots."""
        return self._admission.short_pools()

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            raise RuntimeError("use the Engine inside 'async with'")
        return self._scheduler

    def parts(self) -> tuple[Scheduler, Admission, ExecutorRegistry] | None:
        """The scheduler, the admission ledgers and the executors while serving (for
        ``airloop.engine.stats``), else None."""
        if self._scheduler is None or self._executors is None:
            return None
        return self._scheduler, self._admission, self._executors

    async def __aenter__(self) -> Engine:
        await in_thread(self.settings.create_folders)  # fails naming the setting (home)
        self._store = await Store.open(
            self.settings.database_url,
            pool_size=self.settings.database_pool_size,
            max_overflow=self.settings.database_max_overflow,
        )
        try:
            self._logs = TaskLogWriter()
            self._logs.start()
            channel = OutcomeChannel()
            logs = self._logs
            self.resources = Resources(self.settings)
            self._checkpoints = CheckpointWriter(self._store)
            self._dag_callbacks = DagCallbacks(self.settings.callback_timeout)
            self._executors = ExecutorRegistry(
                self.settings,
                channel,
                self._hostname,
                lambda item: logs.sink(item.log_path),
                self.resources,
            )
            self._scheduler = Scheduler(
                store=self._store,
                executors=self._executors,
                channel=channel,
                shutdown_grace=self.settings.shutdown_grace_seconds,
                admission=self._admission,
                default_executor=self.settings.default_executor,
                min_tick_interval=self.settings.min_tick_interval,
                past_gate_recheck=self.settings.depends_on_past_recheck_interval,
                on_run_finished=self._run_finished,
            )
            # Task code started by this scheduler finds the store (cross-DAG waits,
            # ADR 0036) in the context the scheduler's task runs in.
            serving = contextvars.copy_context()
            serving.run(bind_local_store, self._store)
            self._serve = asyncio.create_task(
                self._scheduler.serve(), name="airloop-scheduler", context=serving
            )
            self.watchdog = LoopWatchdog(
                asyncio.get_running_loop(), self.settings.loop_block_threshold
            )
            self.watchdog.start()
            self._gc.engage()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._scheduler is not None and self._scheduler.active_runs:
            self._scheduler.request_stop(f"{type(exc).__name__} in the calling code")
        await self._close()

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        grace = self.settings.shutdown_grace_seconds
        crashed: BaseException | None = None
        try:
            if self._serve is not None and self._scheduler is not None:
                if self._scheduler.active_runs:
                    # Leaving 'async with' while runs are active interrupts them: they
                    # are recorded as failed, never left 'running'.
                    self._scheduler.request_stop("the engine is closing")
                self._scheduler.close()
                # The scheduler settles its runs within the grace period (it cancels,
                # waits, then fails what did not stop); a little more for the last write.
                try:
                    async with asyncio.timeout(grace + 5.0):
                        await asyncio.shield(self._serve)
                except TimeoutError:
                    log.error("the scheduler did not stop in time; cancelling it")
                    self._serve.cancel()
                    await asyncio.gather(self._serve, return_exceptions=True)
                except Exception as exc:  # noqa: BLE001 - re-raised after cleaning up
                    log.error("the scheduler stopped with an error: %s", exc)
                    crashed = exc
            if self._executors is not None:
                # Anything still running was cancelled and given its grace already
                # (or nothing runs): what is left now is only abandoned, not waited for.
                stopped = self._scheduler.stop_deadline if self._scheduler else None
                deadline = max(loop.time() + 0.5, stopped or loop.time() + grace)
                await self._executors.shutdown(deadline)
                self.abandoned += self._executors.abandoned
            if self._dag_callbacks is not None:
                # Bounded like the executors: the grace (or what is left of a stop's).
                stopped = self._scheduler.stop_deadline if self._scheduler else None
                await self._dag_callbacks.close(
                    max(loop.time() + 0.5, stopped or loop.time() + grace)
                )
            if self.resources is not None:
                await self.resources.aclose()
            if self._checkpoints is not None:
                await self._checkpoints.aclose()
        finally:
            self._gc.release()
            if self.watchdog is not None:
                await in_thread(self.watchdog.stop)
            if self._logs is not None:
                await in_thread(self._logs.close)
            if self._store is not None:
                await self._store.close()
            self._serve = self._scheduler = self._executors = None
            self._dag_callbacks = None
            self._logs = self._store = None
        if crashed is not None:
            raise crashed

    def _run_finished(self, run: ActiveRun, result: RunResult) -> None:
        """After the tick that finished ``run`` is written: its DAG callbacks (ADR 0024)."""
        if self._dag_callbacks is None:
            return
        if result.state is DagRunState.SUCCESS:
            reason = "success"
        elif run.stopping:
            reason = f"interrupted: {run.stopping}"
        elif run.dag.dagrun_timeout is not None and run.abort_reason == run.timeout_reason():
            reason = "timed_out"
        else:
            reason = run.abort_reason or "task_failure"
        self._dag_callbacks.run_finished(run.dag, run.info, result.state, reason)

    def cancel(
        self, run: ActiveRun, task_id: str, map_index: int = -1, reason: str = "cancelled"
    ) -> bool:
        """Stop one queued or running task instance; it fails with ``interrupted: reason``
        (no retry). False if it was not queued or running."""
        if self._executors is None:
            return False
        return self._executors.cancel((run.run_pk, TIKey(task_id, map_index)), reason)

    def request_shutdown(
        self, reason: str, *, keep_runs: bool = False, grace: float | None = None
    ) -> None:
        """Stop: cancel running task instances and fail their runs, or with ``keep_runs``
        leave the runs (and what was running) for the next start to resume."""
        if self._scheduler is not None:
            self._scheduler.request_stop(reason, keep_runs=keep_runs, grace=grace)

    async def start_run(
        self,
        dag: DAG,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        params_as_text: bool = False,
        run_type: str = "manual",
        resume: bool = False,
        logical_date: datetime | None = None,
        data_interval: tuple[datetime, datetime] | None = None,
        queued_pk: int | None = None,
        test_mode: bool = False,
    ) -> ActiveRun:
        """Create a DAG run and hand it to the scheduler; await ``run.done`` for its result.

        Without ``logical_date`` the run has none, as a run triggered through Airflow 3's
        API without one: the context keys that need it (``ds``, ``ts``...) are absent.
        (``airloop run`` and ``airloop dags trigger`` give one: now, or the option's.)
        A DAG has one run per logical date: another is a RunExistsError.

        With ``resume``, an unfinished run ``run_id`` (airloop was killed while it ran)
        carries on from what the store recorded instead (see ``RunPlanner.restore``).
        """
        # The collector's policy (ADR 0044): raised thresholds while the run is built
        # and active; once its DAG, specs and planner are built, what exists is frozen.
        self._gc.run_starting()
        try:
            run = await self._start_run(
                dag,
                params,
                run_id=run_id,
                params_as_text=params_as_text,
                run_type=run_type,
                resume=resume,
                logical_date=logical_date,
                data_interval=data_interval,
                queued_pk=queued_pk,
                test_mode=test_mode,
            )
        except BaseException:
            self._gc.run_ended()
            raise
        run.done.add_done_callback(lambda _: self._gc.run_ended())
        return run

    async def _start_run(
        self,
        dag: DAG,
        params: Mapping[str, Any] | None,
        *,
        run_id: str | None,
        params_as_text: bool,
        run_type: str,
        resume: bool,
        logical_date: datetime | None,
        data_interval: tuple[datetime, datetime] | None,
        queued_pk: int | None,
        test_mode: bool,
    ) -> ActiveRun:
        scheduler = self.scheduler
        resolved = dag.params.resolve(params, as_text=params_as_text)
        dag.validate()
        specs = build_specs(dag, self.settings.default_executor)
        max_active = dag.max_active_tasks or self.settings.max_active_tasks_per_dag
        # One limit per DAG across its runs (max_active_tasks is per DAG, as in Airflow);
        # a changed value changes it in place, its count kept.
        limit = self._admission.dag_limit(dag.dag_id, max_active)
        # Each task's max_active_tis_per_dag: one counter over the DAG's runs.
        task_limits = {
            s.task_id: self._admission.task_limit(dag.dag_id, s.task_id, s.max_active_tis_per_dag)
            for s in specs
            if s.max_active_tis_per_dag is not None
        }
        planner = RunPlanner(
            specs,
            admission=self._admission,
            max_active_tasks=limit,
            fail_fast=dag.fail_fast,
            task_limits=task_limits,
            max_map_length=self.settings.max_map_length,
        )
        # Before the run's clock starts (dagrun_timeout): the collection before the
        # freeze is not the run's time.
        self._gc.run_built()
        assert self._executors is not None
        names = {s.executor for s in specs}
        await self._executors.ensure(names)
        for name in names:
            self._admission.set_capacity(name, self._executors.get(name).capacity)
        if logical_date is not None and logical_date.tzinfo is None:
            raise AirloopError(
                f"DAG {dag.dag_id!r}: logical_date {logical_date.isoformat()} has no time zone "
                "(give an aware datetime, e.g. with tzinfo=UTC)"
            )
        run_id = run_id or f"{run_type}__{(logical_date or datetime.now(UTC)).isoformat()}"
        existing = [] if queued_pk is not None else await self.store.find_runs(run_id, dag.dag_id)
        if existing:
            row = existing[0]
            if resume and row.state is DagRunState.RUNNING:
                return await self._resume(dag, row, specs, planner)
            hint = (
                "; it is unfinished: resume it (--resume)"
                if row.state is DagRunState.RUNNING
                else ""
            )
            raise RunExistsError(f"DAG {dag.dag_id!r} already has a run {run_id!r}{hint}")
        if resume:
            raise RunExistsError(f"DAG {dag.dag_id!r} has no run {run_id!r} to resume")
        if logical_date is not None and queued_pk is None:
            dated = await self.store.find_run_at(dag.dag_id, logical_date)
            if dated is not None:
                raise RunExistsError(
                    f"DAG {dag.dag_id!r} already has a run for logical date "
                    f"{logical_date.isoformat()} ({dated.run_id!r}); one run per DAG and "
                    "logical date: give another one"
                )
        run_pk = await self.store.create_run(
            dag_id=dag.dag_id,
            run_id=run_id,
            run_type=run_type,
            logical_date=logical_date,
            params=resolved,
            task_instances=initial_rows(dag, specs),
            data_interval=data_interval,
            existing_pk=queued_pk,
        )
        info = DagRunInfo(
            dag_id=dag.dag_id,
            run_id=run_id,
            logical_date=logical_date,
            run_type=run_type,
            params=resolved,
            data_interval_start=data_interval[0] if data_interval else None,
            data_interval_end=data_interval[1] if data_interval else None,
            **await self._previous_success(dag.dag_id, logical_date),
            test_mode=test_mode,
        )
        run = ActiveRun(
            run_pk=run_pk,
            dag=dag,
            info=info,
            specs=specs,
            planner=planner,
            logs_root=self.settings.logs_path,
            xcom_max_bytes=self.settings.xcom_max_bytes,
            started_at=asyncio.get_running_loop().time(),
            **self._run_services(),
        )
        scheduler.add_run(run)
        return run

    async def _previous_success(self, dag_id: str, logical_date: datetime | None) -> dict[str, Any]:
        """The prev_*_success context keys: the DAG's latest successful run before
        ``logical_date`` (None each when there is none, as in Airflow, or when this run
        has no logical date to order it by)."""
        prev = (
            await self.store.previous_run(dag_id, logical_date, DagRunState.SUCCESS)
            if logical_date is not None
            else None
        )
        return {
            "prev_data_interval_start_success": prev.data_interval_start if prev else None,
            "prev_data_interval_end_success": prev.data_interval_end if prev else None,
            "prev_start_date_success": prev.start_date if prev else None,
        }

    def _run_services(self) -> dict[str, Any]:
        """What every ActiveRun gets from the engine: checkpoint writer, task-log sinks."""
        assert self._checkpoints is not None and self._logs is not None
        return {"checkpoints": self._checkpoints.save, "task_log": self._logs.sink}

    async def _resume(
        self, dag: DAG, row: DagRunRow, specs: list[TaskSpec], planner: RunPlanner
    ) -> ActiveRun:
        loop = asyncio.get_running_loop()
        tis = await self.store.task_instances(row.id)
        stored_tasks = {ti.task_id for ti in tis}
        if stored_tasks != {s.task_id for s in specs}:
            raise RunExistsError(
                f"DAG {dag.dag_id!r} changed since run {row.run_id!r} started "
                f"(tasks now: {len(specs)}, then: {len(stored_tasks)}): it cannot be resumed"
            )
        now, now_dt = loop.time(), datetime.now(UTC)
        run = ActiveRun.resumed(
            run_pk=row.id,
            dag=dag,
            info=DagRunInfo(
                dag.dag_id,
                row.run_id,
                row.logical_date,
                row.run_type,
                row.params,
                row.data_interval_start,
                row.data_interval_end,
                **await self._previous_success(dag.dag_id, row.logical_date),
            ),
            specs=specs,
            planner=planner,
            logs_root=self.settings.logs_path,
            xcom_max_bytes=self.settings.xcom_max_bytes,
            started_at=now,
            task_instances=tis,
            xcoms=[
                (TIKey(x.task_id, x.map_index), x.key, x.value)
                for x in await self.store.xcom_values(row.id)
            ],
            logged=[
                (TIKey(r.task_id, r.map_index), r.try_number)
                for r in await self.store.log_paths(row.id)
            ],
            now=now,
            now_dt=now_dt,
            **self._run_services(),
        )
        self.store.bind_run(row.id, dag.dag_id)
        log.warning(
            "resuming run %s of DAG %s: %d task instances were queued or running",
            row.run_id,
            dag.dag_id,
            sum(1 for ti in tis if ti.state in (TaskState.QUEUED, TaskState.RUNNING)),
        )
        self.scheduler.add_run(run)
        return run

    async def run(
        self,
        dag: DAG,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        on_progress: ProgressHook | None = None,
        logical_date: datetime | None = None,
    ) -> RunResult:
        """Run ``dag`` once, to completion; returns its result (failed tasks do not raise).

        Without ``logical_date`` the run has none (see ``start_run``). Cancelling this
        call does not stop the run: it goes on until it finishes or the engine closes
        (which interrupts it).
        """
        run = await self.start_run(dag, params, run_id=run_id, logical_date=logical_date)
        if on_progress is not None:
            run.subscribe(on_progress)
        return await asyncio.shield(run.done)


def run(
    dag: DAG,
    params: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    run_id: str | None = None,
    logical_date: datetime | None = None,
) -> RunResult:
    """Run ``dag`` once from sync code, on a new event loop.

    Without ``settings``, they are read as the CLI reads them (``load_settings()``);
    without ``logical_date`` the run has none (see ``Engine.start_run``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop in this thread: the expected case
    else:
        raise RuntimeError(
            "airloop.run() was called inside a running event loop; in async code use "
            "'async with airloop.Engine() as engine: await engine.run(dag, ...)'"
        )
    settings = settings if settings is not None else load_settings()

    async def main() -> RunResult:
        async with Engine(settings) as engine:
            return await engine.run(dag, params, run_id=run_id, logical_date=logical_date)

    return asyncio.run(main())


__all__ = ["Engine", "RunResult", "WorkItem", "run"]
