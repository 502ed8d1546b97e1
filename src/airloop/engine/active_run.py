"""One DAG run in flight: the planner, the rows it mirrors, its outputs, its result.

Closed: built by one constructor (or ``ActiveRun.resumed`` for a run carried on after
a restart); the scheduler drives it through methods, others read it and subscribe to
its progress. Nothing outside writes its fields.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airloop.authoring.context import Checkpoint, DagRunInfo
from airloop.authoring.dag import DAG
from airloop.authoring.xcom import XCOM_RETURN_KEY
from airloop.core.masking import add_secrets, redact_text
from airloop.core.outcomes import Outcome
from airloop.core.plan import Plan, StoredTI
from airloop.core.planner import RunPlanner
from airloop.core.specs import TaskSpec, TIKey
from airloop.core.states import TERMINAL, DagRunState, TaskState
from airloop.core.stats import Histogram
from airloop.core.stimuli import Event, Failed, Skipped, Started, Stimulus, Succeeded
from airloop.engine.outputs import RunOutputs
from airloop.executors.base import WorkItem
from airloop.executors.events import TaskEvent, TaskFinished, TaskStarted
from airloop.executors.task_logs import LogSink, log_path
from airloop.store.records import (
    Expansion,
    LogRow,
    RenderedRow,
    RunUpdate,
    TaskInstanceRow,
    TIUpdate,
    WriteBatch,
    XComRow,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TIRecord:
    """The scheduler's copy of one task_instance row's details; written back when dirty.

    State and try number are not here: the planner holds them (one copy).
    """

    key: TIKey
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None
    hostname: str | None = None
    executor: str | None = None
    next_retry_at: datetime | None = None
    error: str | None = None
    #: {"try_number": n, "value": ...}: written by the task itself, not in row()
    checkpoint: dict[str, Any] | None = None
    #: A mapped instance's label (map_index_template), set when a try ends.
    rendered_map_index: str | None = None
    #: (try number, log file) of the last try handed to an executor: its start
    #: report's log row reuses the path instead of formatting it again.
    log_file: tuple[int, str] | None = None

    def row(
        self, run_pk: int, state: TaskState, try_number: int, guard: int | None = None
    ) -> TIUpdate:
        return TIUpdate(
            run_pk,
            self.key.task_id,
            self.key.map_index,
            state,
            try_number,
            self.queued_at,
            self.start_date,
            self.end_date,
            self.duration,
            self.hostname,
            self.executor,
            self.next_retry_at,
            self.error,
            self.rendered_map_index,
            guard,
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    run_pk: int
    dag_id: str
    run_id: str
    state: DagRunState
    counts: dict[str, int]
    duration: float
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is DagRunState.SUCCESS


ProgressHook = Callable[["ActiveRun"], None]
CheckpointSaver = Callable[[int, str, int, dict[str, Any]], Awaitable[None]]


class ActiveRun:
    """One run the scheduler drives: its planner, its rows' details, its outputs."""

    def __init__(
        self,
        *,
        run_pk: int,
        dag: DAG,
        info: DagRunInfo,
        specs: list[TaskSpec],
        planner: RunPlanner,
        logs_root: Path,
        xcom_max_bytes: int,
        started_at: float,
        checkpoints: CheckpointSaver | None = None,
        task_log: Callable[[str], LogSink] | None = None,
    ) -> None:
        self.run_pk = run_pk
        self.dag = dag
        self.info = info
        self.specs = specs
        self.logs_root = logs_root
        self._logs_root = str(logs_root)  # formatted 20,000 times for 10,000 tasks
        self.xcom_max_bytes = xcom_max_bytes
        self.started_at = started_at
        self._planner = planner
        #: Durable checkpoint writer (Store.save_checkpoint); None keeps them in memory.
        self._checkpoints = checkpoints
        #: The log sink of a try's file: where a failed try is told it will be retried.
        self._task_log = task_log
        self.outputs = RunOutputs(dag, planner)
        self._records: dict[TIKey, TIRecord] = {
            TIKey(s.task_id): TIRecord(TIKey(s.task_id)) for s in specs
        }
        self._dirty: set[TIKey] = set()
        self.wake_at: float | None = None
        self.done: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        #: Set for a resumed run until its first plan (see ``resumed``).
        self._restored: list[StoredTI] | None = None
        self._restored_lengths: dict[str, int | None] = {}
        #: Task instances resumed under the same try: their operators are told so once.
        self._resumed_keys: set[TIKey] = set()
        #: Task instances the planner restored to be started again under their stored
        #: try (RunPlanner.restore's ``keep_try``): the row already holds that number.
        self._kept_tries: set[TIKey] = set()
        #: The guard of each start since the last flush: the try number its row must
        #: hold for the start to be this scheduler's (ADR 0041, exactly-once starts).
        self._guards: dict[TIKey, int] = {}
        #: (task instance, try) whose log row exists (a resumed try reuses its file).
        self._logged: set[tuple[TIKey, int]] = set()
        self._subscribers: list[ProgressHook] = []
        #: Held by their depends_on_past gate since the last ``take_gated``.
        self._gated: list[TIKey] = []
        #: Task instances with a "waiting: ..." note (cleared once they are scheduled).
        self._waiting_notes: set[TIKey] = set()
        #: A task instance reached a terminal state since the last ``take_settled``.
        self._settled = False
        #: Where finished tries' durations are counted (set by the scheduler: /metrics).
        self.durations: Histogram | None = None

    @classmethod
    def resumed(
        cls,
        *,
        run_pk: int,
        dag: DAG,
        info: DagRunInfo,
        specs: list[TaskSpec],
        planner: RunPlanner,
        logs_root: Path,
        xcom_max_bytes: int,
        started_at: float,
        task_instances: Iterable[TaskInstanceRow],
        xcoms: Iterable[tuple[TIKey, str, str]],
        logged: Iterable[tuple[TIKey, int]],
        now: float,
        now_dt: datetime,
        checkpoints: CheckpointSaver | None = None,
        task_log: Callable[[str], LogSink] | None = None,
    ) -> ActiveRun:
        """A run carried on from what the store recorded (airloop stopped while it ran).

        ``task_instances`` are the stored rows (task_id, map_index, state, try_number,
        the times, hostname, executor, next_retry_at, error, checkpoint); the first
        plan restores the planner from them (``RunPlanner.restore``).
        """
        run = cls(
            run_pk=run_pk,
            dag=dag,
            info=info,
            specs=specs,
            planner=planner,
            logs_root=logs_root,
            xcom_max_bytes=xcom_max_bytes,
            started_at=started_at,
            checkpoints=checkpoints,
            task_log=task_log,
        )
        records: dict[TIKey, TIRecord] = {}
        stored: list[StoredTI] = []
        for ti in task_instances:
            key = TIKey(ti.task_id, ti.map_index)
            state = ti.state
            records[key] = TIRecord(
                key,
                ti.queued_at,
                ti.start_date,
                ti.end_date,
                ti.duration,
                ti.hostname,
                ti.executor,
                ti.next_retry_at,
                ti.error,
                ti.checkpoint,
                ti.rendered_map_index,
            )
            checkpointed = (
                ti.checkpoint is not None and ti.checkpoint.get("try_number") == ti.try_number
            )
            resumable = checkpointed or dag.task_dict[ti.task_id].can_resume
            if state in (TaskState.QUEUED, TaskState.RUNNING) and resumable:
                run._resumed_keys.add(key)
                # Mirrors RunPlanner.restore: started again under the same try number.
                run._kept_tries.add(key)
            retry_at = (
                now + (ti.next_retry_at - now_dt).total_seconds() if ti.next_retry_at else None
            )
            stored.append(StoredTI(key, state, ti.try_number, retry_at, resumable))
        run._records = records
        run._restored_lengths = run.outputs.restore(xcoms)
        run._restored = stored
        run._logged = set(logged)
        return run

    # -- reading --------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"{self.info.dag_id}/{self.info.run_id}"

    @property
    def finished(self) -> bool:
        """The planner decided the run's final state."""
        return self._planner.finished

    @property
    def active(self) -> int:
        """Task instances queued or running."""
        return self._planner.active

    @property
    def waiting(self) -> bool:
        """Some task instance is ready and waits for a slot."""
        return self._planner.waiting

    @property
    def stopping(self) -> str | None:
        """Why the scheduler is stopping this run, once it is (the planner's)."""
        return self._planner.stop_reason

    @property
    def abort_reason(self) -> str | None:
        """Why this run is being failed (dagrun_timeout...), once it is."""
        return self._planner.abort_reason

    @property
    def ending(self) -> bool:
        """A stop or an abort began: nothing more starts."""
        return self._planner.ending

    @property
    def fail_fast_reason(self) -> str | None:
        """Why this fail_fast run is stopping its tasks (one failed), once it is."""
        return self._planner.fail_fast_reason

    @property
    def kept(self) -> bool:
        """Left unfinished on purpose (the service stopped): resumed at the next start."""
        return self._planner.kept

    def counts(self) -> dict[TaskState, int]:
        return self._planner.counts()

    def keys(self, task_id: str) -> list[TIKey]:
        return self._planner.keys(task_id)

    def state_of(self, key: TIKey) -> TaskState | None:
        """The task instance's state (None while it does not exist, e.g. not expanded)."""
        if key not in self._records:
            return None
        return self._planner.state_of(key)

    def try_number(self, key: TIKey) -> int:
        return self._planner.try_number(key)

    def note_of(self, key: TIKey) -> str | None:
        """The task instance's error note (why it failed, was skipped, will retry)."""
        rec = self._records.get(key)
        return None if rec is None else rec.error

    def take_gated(self) -> list[TIKey]:
        """Task instances the planner held by their depends_on_past gate since the
        last call (the scheduler's past gates check them)."""
        gated, self._gated = self._gated, []
        return gated

    def take_settled(self) -> bool:
        """Did a task instance reach a terminal state since the last call?"""
        settled, self._settled = self._settled, False
        return settled

    def note_waiting(self, key: TIKey, reason: str) -> None:
        """Why a held task instance waits (shown as its note, e.g. ``airloop tasks
        states``); written with the next batch."""
        rec = self._records.get(key)
        if rec is None or rec.error == reason:
            return
        if key not in self._waiting_notes:
            log.info("%s %s %s", self.label, key, reason)
        rec.error = reason
        self._waiting_notes.add(key)
        self._dirty.add(key)

    def running_keys(self) -> list[TIKey]:
        """Task instances queued or running (handed to an executor)."""
        state_of = self._planner.state_of
        return [k for k in self._records if state_of(k) in (TaskState.QUEUED, TaskState.RUNNING)]

    @property
    def deadline(self) -> float | None:
        """Loop time at which the DAG's dagrun_timeout fails this run (None: no limit).

        Counted from when this process started (or resumed) the run.
        """
        limit = self.dag.dagrun_timeout
        return None if limit is None else self.started_at + limit.total_seconds()

    def timeout_reason(self) -> str:
        limit = self.dag.dagrun_timeout
        assert limit is not None
        return f"dagrun_timeout of {limit.total_seconds():g}s exceeded"

    # -- progress -------------------------------------------------------------------

    def subscribe(self, hook: ProgressHook) -> Callable[[], None]:
        """Call ``hook(run)`` after every scheduler tick (and when the run ends);
        returns the function that unsubscribes it."""
        self._subscribers.append(hook)

        def unsubscribe() -> None:
            if hook in self._subscribers:
                self._subscribers.remove(hook)

        return unsubscribe

    def progressed(self) -> None:
        """Tell the subscribers (the scheduler calls this after each tick)."""
        for hook in list(self._subscribers):
            hook(self)

    # -- lifecycle (the scheduler's) --------------------------------------------------

    def hold(self) -> None:
        """Start nothing more (events are still processed)."""
        self._planner.hold()

    def abandon(self) -> None:
        """Let the run go (another scheduler took it over): its planner releases the
        slots and limits it holds and leaves the admission."""
        self._planner.abandon()

    def unhold(self, now: float) -> None:
        """Start tasks again after ``hold`` -- unless the run is being failed or stopped;
        the run is planned at the next tick from ``now``."""
        self._planner.unhold()
        self.wake_at = now

    # -- planning (the scheduler's) ---------------------------------------------------

    def initial_plan(self, batch: WriteBatch, now: float, now_dt: datetime) -> None:
        """The first plan: from scratch, or from the stored states of a resumed run
        (what it makes ready is admitted with every other run's, by the scheduler)."""
        if self._restored is None:
            plan = self._planner.start(now, admit=False)
        else:
            stored, self._restored = self._restored, None
            plan = self._planner.restore(stored, self._restored_lengths, now, admit=False)
        self.absorb(plan, batch, now, now_dt)

    def plan(
        self, stimuli: Sequence[Stimulus], batch: WriteBatch, now: float, now_dt: datetime
    ) -> list[TIKey]:
        """Hand ``stimuli`` to the planner, mirror its plan; return what to cancel.

        Nothing is started here: the scheduler admits over every run at once
        (``Admission.admit``), then takes each run's starts (``collect_admitted``).
        """
        plan = self._planner.handle(stimuli, now, admit=False)
        self.absorb(plan, batch, now, now_dt)
        return plan.to_cancel

    def collect_admitted(self, batch: WriteBatch, now: float, now_dt: datetime) -> list[TIKey]:
        """What the cross-run admission started for this run this tick."""
        if not self._planner.has_admitted:
            return []
        return self.absorb(self._planner.take_admitted(), batch, now, now_dt)

    # -- events in ------------------------------------------------------------------

    def on_event(self, event: TaskEvent, batch: WriteBatch) -> Event | None:
        """Record what an executor reported; return the planner's view of it (None if stale)."""
        if isinstance(event, TaskFinished) and event.secrets:
            add_secrets(event.secrets)  # registered in a worker process (ADR 0032)
        rec = self._records.get(event.key)
        if rec is None:
            return None  # e.g. a mapped placeholder's late report
        state, try_number = self._planner.ti_state(event.key)
        if try_number != event.try_number:
            return None  # a late report about a try that is already settled
        if isinstance(event, TaskStarted):
            # start_date and end_date are cleared when a try is queued. A second report
            # of the same start (a worker's side channel and its result both carry it)
            # is dropped, and so is a start that crosses its own end: a thread's report
            # (call_soon_threadsafe) can arrive after the loop reported the try
            # cancelled, within the same tick.
            if (
                state is not TaskState.QUEUED
                or rec.start_date is not None
                or rec.end_date is not None
            ):
                return None
            rec.start_date = event.at
            rec.hostname = event.hostname
            rec.executor = event.executor
            self._dirty.add(event.key)
            if (event.key, event.try_number) in self._logged:
                return Started(event.key, event.stimulus_id)
            self._logged.add((event.key, event.try_number))
            known = rec.log_file
            path = (
                known[1]
                if known is not None and known[0] == event.try_number
                else self._log_path(event.key, event.try_number)
            )
            batch.logs.append(
                LogRow(
                    self.run_pk,
                    event.key.task_id,
                    event.key.map_index,
                    event.try_number,
                    path,
                )
            )
            return Started(event.key, event.stimulus_id)
        assert isinstance(event, TaskFinished)
        if state not in (TaskState.QUEUED, TaskState.RUNNING):
            return None
        rec.end_date = event.at
        rec.duration = event.duration
        if event.duration is not None and self.durations is not None:
            self.durations.observe(event.duration)
        if event.rendered_map_index is not None:
            rec.rendered_map_index = event.rendered_map_index
        self._dirty.add(event.key)
        if event.rendered is not None:  # written in the tick's one transaction
            batch.rendered.append(
                RenderedRow(
                    self.run_pk,
                    event.key.task_id,
                    event.key.map_index,
                    event.try_number,
                    event.rendered,
                )
            )
        outcome = event.outcome
        if outcome is Outcome.SUCCESS:
            task_id, map_index = event.key.task_id, event.key.map_index
            if event.xcom is not None:
                self.outputs.record(event.key, XCOM_RETURN_KEY, event.xcom)
                batch.xcoms.append(
                    XComRow(self.run_pk, task_id, map_index, XCOM_RETURN_KEY, event.xcom)
                )
            for name, text in event.pushed:
                self.outputs.record(event.key, name, text)
                batch.xcoms.append(XComRow(self.run_pk, task_id, map_index, name, text))
            return Succeeded(
                event.key,
                event.output_length,
                event.stimulus_id,
                skip_downstream=event.skip_downstream,
            )
        if outcome is Outcome.SKIPPED:
            return Skipped(event.key, redact_text(event.reason or ""), event.stimulus_id)
        return Failed(
            event.key,
            redact_text(event.reason or str(outcome)),
            retryable=event.retryable,
            outcome=outcome,
            stimulus_id=event.stimulus_id,
        )

    # -- decisions out --------------------------------------------------------------

    def absorb(self, plan: Plan, batch: WriteBatch, now: float, now_dt: datetime) -> list[TIKey]:
        """Mirror a plan into the records and the batch; return what to start."""
        if log.isEnabledFor(logging.DEBUG):
            for change in plan.changes:
                log.debug(
                    "%s %s: %s -> %s (try %d, %s)%s",
                    self.label,
                    change.key,
                    change.old,
                    change.new,
                    change.try_number,
                    change.stimulus_id,
                    f": {change.reason}" if change.reason else "",
                )
        records = self._records
        for exp in plan.expansions:
            batch.expansions.append(Expansion(self.run_pk, exp.task_id, exp.count))
            del records[TIKey(exp.task_id)]
            self._dirty.discard(TIKey(exp.task_id))
            for i in range(exp.count):
                records[TIKey(exp.task_id, i)] = TIRecord(TIKey(exp.task_id, i))
        self._gated.extend(plan.gated)
        notes = self._waiting_notes
        for change in plan.changes:
            rec = records[change.key]
            if change.new in TERMINAL:
                self._settled = True
            if notes and change.key in notes:  # (no hashing at all without held tasks)
                notes.discard(change.key)
                rec.error = None
            if change.new is TaskState.QUEUED:
                rec.queued_at = now_dt
                rec.start_date = rec.end_date = rec.duration = None
                rec.error = None
                # A start: written only where the row still holds the try before it.
                kept = self._kept_tries
                if kept and change.key in kept:
                    kept.discard(change.key)
                    self._guards[change.key] = change.try_number
                else:
                    self._guards[change.key] = change.try_number - 1
            elif change.reason is not None:
                rec.error = change.reason
            rec.next_retry_at = (
                now_dt + timedelta(seconds=change.next_retry_at - now)
                if change.next_retry_at is not None
                else None
            )
            if change.new is TaskState.UP_FOR_RETRY and self._task_log is not None:
                self._note_retry(rec, change.try_number)
            self._dirty.add(change.key)
        self.wake_at = plan.wake_at
        return plan.to_start

    def _note_retry(self, rec: TIRecord, try_number: int) -> None:
        """End the failed try's log with what happens next (its executor wrote the rest
        before reporting the failure, so this line comes last)."""
        assert self._task_log is not None
        at = rec.next_retry_at.isoformat(timespec="milliseconds") if rec.next_retry_at else "once"
        self._task_log(self._log_path(rec.key, try_number)).line(
            "INFO", f"will retry as try {try_number + 1} at {at}"
        )

    def flush(self, batch: WriteBatch) -> None:
        records, ti_state, run_pk = self._records, self._planner.ti_state, self.run_pk
        guards = self._guards
        if guards:
            self._guards = {}
            batch.ti_updates.extend(
                records[key].row(run_pk, *ti_state(key), guards.get(key)) for key in self._dirty
            )
        else:
            batch.ti_updates.extend(records[key].row(run_pk, *ti_state(key)) for key in self._dirty)
        self._dirty.clear()

    def finish(self, batch: WriteBatch, now: float, now_dt: datetime) -> RunResult:
        state = self._planner.run_state
        assert state is not None
        note = f"interrupted: {self.stopping}" if self.stopping else self.abort_reason
        batch.run_updates.append(RunUpdate(self.run_pk, state, now_dt, note))
        state_of = self._planner.state_of
        failed = [
            (
                f"{rec.key} ({rec.rendered_map_index})" if rec.rendered_map_index else str(rec.key),
                rec.error or "",
            )
            for rec in self._records.values()
            if state_of(rec.key) is TaskState.FAILED
        ]
        return RunResult(
            run_pk=self.run_pk,
            dag_id=self.info.dag_id,
            run_id=self.info.run_id,
            state=state,
            counts={s.value: n for s, n in self._planner.counts().items()},
            duration=now - self.started_at,
            failed=failed,
            interrupted=self.stopping,
        )

    def keep_result(self, now: float, why: str | None = None) -> RunResult:
        """The result of a run left unfinished ('running'): on purpose when the service
        stopped, or let go to another scheduler (``why``)."""
        return RunResult(
            run_pk=self.run_pk,
            dag_id=self.info.dag_id,
            run_id=self.info.run_id,
            state=DagRunState.RUNNING,
            counts={s.value: n for s, n in self._planner.counts().items()},
            duration=now - self.started_at,
            interrupted=self.stopping if why is None else why,
        )

    # -- work items -----------------------------------------------------------------

    def _log_path(self, key: TIKey, try_number: int) -> str:
        return log_path(
            self._logs_root,
            self.info.dag_id,
            self.info.run_id,
            key.task_id,
            key.map_index,
            try_number,
        )

    def work_item(self, key: TIKey, default_executor: str) -> WorkItem:
        """Materialize the operator for ``key``; raises if its inputs cannot be resolved."""
        node = self.dag.task_dict[key.task_id]
        bound = node.bind(key.map_index, self.outputs)
        operator = node.rebuild(bound)
        rec = self._records[key]
        try_number = self._planner.try_number(key)
        stored = rec.checkpoint
        current = stored["value"] if stored and stored.get("try_number") == try_number else None
        path = self._log_path(key, try_number)
        rec.log_file = (try_number, path)
        return WorkItem.build(
            dag=self.dag,
            operator=operator,
            run=self.info,
            run_pk=self.run_pk,
            map_index=key.map_index,
            try_number=try_number,
            log_path=path,
            xcom_max_bytes=self.xcom_max_bytes,
            executor=node.settings.executor or default_executor,
            bound=bound,
            checkpoint=Checkpoint(
                current,
                functools.partial(self._save_checkpoint, key, try_number),
                resumed=self._take_resumed(key),
            ),
            settings=node.settings,
        )

    def _take_resumed(self, key: TIKey) -> bool:
        if self._resumed_keys and key in self._resumed_keys:  # (empty unless restarted)
            self._resumed_keys.discard(key)
            return True
        return False

    async def _save_checkpoint(self, key: TIKey, try_number: int, value: Any) -> None:
        stored = {"try_number": try_number, "value": value}
        if self._checkpoints is not None:
            await self._checkpoints(self.run_pk, key.task_id, key.map_index, stored)
        self._records[key].checkpoint = stored
