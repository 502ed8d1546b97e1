"""One DAG run in flight: the planner, the rows it mirrors, its XComs, its result."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airloop.authoring.context import Checkpoint, DagRunInfo
from airloop.authoring.dag import DAG
from airloop.authoring.xcom_arg import as_sequence
from airloop.core.outcomes import Outcome
from airloop.core.planner import (
    Event,
    Failed,
    Plan,
    RunPlanner,
    Skipped,
    Started,
    StoredTI,
    Succeeded,
    TaskSpec,
    TIKey,
)
from airloop.core.states import DagRunState, TaskState
from airloop.executors.base import WorkItem
from airloop.executors.events import TaskEvent, TaskFinished, TaskStarted
from airloop.executors.task_logs import LogSink, log_path
from airloop.store.repository import WriteBatch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TIRecord:
    """The scheduler's copy of one task_instance row; written back when dirty."""

    key: TIKey
    state: TaskState = TaskState.NONE
    try_number: int = 0
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

    def row(self, run_pk: int) -> dict[str, Any]:
        return {
            "b_run": run_pk,
            "b_task": self.key.task_id,
            "b_index": self.key.map_index,
            "state": self.state.value,
            "try_number": self.try_number,
            "queued_at": self.queued_at,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "duration": self.duration,
            "hostname": self.hostname,
            "executor": self.executor,
            "next_retry_at": self.next_retry_at,
            "error": self.error,
        }


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


class ActiveRun:
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
    ) -> None:
        self.run_pk = run_pk
        self.dag = dag
        self.info = info
        self.logs_root = logs_root
        self._logs_root = str(logs_root)  # formatted 20,000 times for 10,000 tasks
        self.xcom_max_bytes = xcom_max_bytes
        self.started_at = started_at
        self.specs = specs
        self.planner = planner
        self.records: dict[TIKey, TIRecord] = {
            TIKey(s.task_id): TIRecord(TIKey(s.task_id)) for s in self.specs
        }
        self.dirty: set[TIKey] = set()
        self.xcoms: dict[TIKey, str] = {}
        self._decoded: dict[str, Any] = {}
        self._sequences: dict[str, list[Any] | tuple[Any, ...]] = {}
        self.wake_at: float | None = None
        self.done: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.stopping: str | None = None
        #: Durable checkpoint writer (Store.save_checkpoint); None keeps them in memory.
        self.checkpoints: Callable[[int, str, int, dict[str, Any]], Awaitable[None]] | None = None
        #: Set when the run is resumed after a restart (see Engine.start_run).
        self.restored: list[StoredTI] | None = None
        self.restored_lengths: dict[str, int | None] = {}
        #: Task instances resumed under the same try: their operators are told so once.
        self.resumed_keys: set[TIKey] = set()
        #: Task instances cancelled by a service stop that keeps the run for later.
        self.interrupted: set[TIKey] = set()
        #: Set by Scheduler.abort_run: the run fails with this note once nothing runs.
        self.abort_reason: str | None = None
        self.kept = False
        #: (task instance, try) whose log row exists (a resumed try reuses its file).
        self.logged: set[tuple[TIKey, int]] = set()
        #: Called after every scheduler tick that touched this run (and when it ends).
        self.on_progress: Callable[[ActiveRun], None] | None = None
        #: The log sink of a try's file (set by the scheduler): where a failed try is
        #: told it will be retried.
        self.task_log: Callable[[str], LogSink] | None = None

    @property
    def label(self) -> str:
        return f"{self.info.dag_id}/{self.info.run_id}"

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

    def initial_plan(self, now: float) -> Plan:
        """The first plan: from scratch, or from the stored states of a resumed run."""
        if self.restored is None:
            return self.planner.start(now)
        stored, self.restored = self.restored, None
        return self.planner.restore(stored, self.restored_lengths, now)

    # -- events in ------------------------------------------------------------------

    def on_event(self, event: TaskEvent, batch: WriteBatch) -> Event | None:
        """Record what an executor reported; return the planner's view of it (None if stale)."""
        rec = self.records.get(event.key)
        if rec is None or rec.try_number != event.try_number:
            return None  # a late report about a try that is already settled
        if isinstance(event, TaskStarted):
            # start_date and end_date are cleared when a try is queued. A second report
            # of the same start (a worker's side channel and its result both carry it)
            # is dropped, and so is a start that crosses its own end: a thread's report
            # (call_soon_threadsafe) can arrive after the loop reported the try
            # cancelled, within the same tick.
            if (
                rec.state is not TaskState.QUEUED
                or rec.start_date is not None
                or rec.end_date is not None
            ):
                return None
            rec.start_date = event.at
            rec.hostname = event.hostname
            rec.executor = event.executor
            self.dirty.add(event.key)
            if (event.key, event.try_number) in self.logged:
                return Started(event.key, event.stimulus_id)
            self.logged.add((event.key, event.try_number))
            batch.logs.append(
                {
                    "dag_run_id": self.run_pk,
                    "task_id": event.key.task_id,
                    "map_index": event.key.map_index,
                    "try_number": event.try_number,
                    "path": self._log_path(event.key, event.try_number),
                }
            )
            return Started(event.key, event.stimulus_id)
        assert isinstance(event, TaskFinished)
        if rec.state not in (TaskState.QUEUED, TaskState.RUNNING):
            return None
        rec.end_date = event.at
        rec.duration = event.duration
        self.dirty.add(event.key)
        outcome = event.outcome
        if outcome is Outcome.SUCCESS:
            if event.xcom is not None:
                self.xcoms[event.key] = event.xcom
                batch.xcoms.append(
                    {
                        "dag_run_id": self.run_pk,
                        "task_id": event.key.task_id,
                        "map_index": event.key.map_index,
                        "key": "return_value",
                        "value": event.xcom,
                        "size": len(event.xcom),
                    }
                )
            return Succeeded(event.key, event.output_length, event.stimulus_id)
        if outcome is Outcome.SKIPPED:
            return Skipped(event.key, event.reason or "", event.stimulus_id)
        return Failed(
            event.key,
            event.reason or str(outcome),
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
        for exp in plan.expansions:
            batch.expansions.append((self.run_pk, exp.task_id, exp.count))
            del self.records[TIKey(exp.task_id)]
            self.dirty.discard(TIKey(exp.task_id))
            for i in range(exp.count):
                self.records[TIKey(exp.task_id, i)] = TIRecord(TIKey(exp.task_id, i))
        for change in plan.changes:
            rec = self.records[change.key]
            rec.state = change.new
            rec.try_number = change.try_number
            if change.new is TaskState.QUEUED:
                rec.queued_at = now_dt
                rec.start_date = rec.end_date = rec.duration = None
                rec.error = None
            elif change.reason is not None:
                rec.error = change.reason
            rec.next_retry_at = (
                now_dt + timedelta(seconds=change.next_retry_at - now)
                if change.next_retry_at is not None
                else None
            )
            if change.new is TaskState.UP_FOR_RETRY and self.task_log is not None:
                self._note_retry(rec)
            self.dirty.add(change.key)
        self.wake_at = plan.wake_at
        return plan.to_start

    def _note_retry(self, rec: TIRecord) -> None:
        """End the failed try's log with what happens next (its executor wrote the rest
        before reporting the failure, so this line comes last)."""
        assert self.task_log is not None
        at = rec.next_retry_at.isoformat(timespec="milliseconds") if rec.next_retry_at else "once"
        self.task_log(self._log_path(rec.key, rec.try_number)).line(
            "INFO", f"will retry as try {rec.try_number + 1} at {at}"
        )

    def flush(self, batch: WriteBatch) -> None:
        batch.ti_updates.extend(self.records[key].row(self.run_pk) for key in self.dirty)
        self.dirty.clear()

    def finish(self, batch: WriteBatch, now: float, now_dt: datetime) -> RunResult:
        state = self.planner.run_state
        assert state is not None
        note = f"interrupted: {self.stopping}" if self.stopping else self.abort_reason
        batch.run_updates.append(
            {
                "b_id": self.run_pk,
                "state": state.value,
                "end_date": now_dt,
                "note": note,
            }
        )
        failed = [
            (str(rec.key), rec.error or "")
            for rec in self.records.values()
            if rec.state is TaskState.FAILED
        ]
        return RunResult(
            run_pk=self.run_pk,
            dag_id=self.info.dag_id,
            run_id=self.info.run_id,
            state=state,
            counts={s.value: n for s, n in self.planner.counts().items()},
            duration=now - self.started_at,
            failed=failed,
            interrupted=self.stopping,
        )

    def keep_result(self, now: float) -> RunResult:
        """The result of a run left unfinished on purpose (the service stopped)."""
        return RunResult(
            run_pk=self.run_pk,
            dag_id=self.info.dag_id,
            run_id=self.info.run_id,
            state=DagRunState.RUNNING,
            counts={s.value: n for s, n in self.planner.counts().items()},
            duration=now - self.started_at,
            interrupted=self.stopping,
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

    # -- upstream outputs (an OutputLookup) ------------------------------------------

    def _output(self, task_id: str) -> Any:
        """A finished upstream task's output, decoded once and shared -- never handed out
        directly: callers copy what they give to a task."""
        if task_id in self._decoded:
            return self._decoded[task_id]
        node = self.dag.task_dict[task_id]
        if node.is_mapped:
            keys = sorted(
                (
                    k
                    for k, r in self.records.items()
                    if k.task_id == task_id and r.state is TaskState.SUCCESS
                ),
                key=lambda k: k.map_index,
            )
            value: Any = [self._decode(self.xcoms.get(k)) for k in keys]
        else:
            value = self._decode(self.xcoms.get(TIKey(task_id)))
        # Cache only a final answer: a task started early by its trigger rule
        # (one_success, always...) may look before this upstream has finished.
        if self.planner.task_done(task_id):
            self._decoded[task_id] = value
        return value

    def __call__(self, task_id: str) -> Any:
        return copy.deepcopy(self._output(task_id))

    def length(self, task_id: str) -> int:
        return len(as_sequence(task_id, self._output(task_id)))

    def item(self, task_id: str, index: int) -> Any:
        seq = self._sequences.get(task_id)
        if seq is None:
            seq = as_sequence(task_id, self._output(task_id))
            if task_id in self._decoded:
                self._sequences[task_id] = seq
        return copy.deepcopy(seq[index])

    @staticmethod
    def _decode(text: str | None) -> Any:
        return None if text is None else json.loads(text)

    def work_item(self, key: TIKey, default_executor: str) -> WorkItem:
        """Materialize the operator for ``key``; raises if its inputs cannot be resolved."""
        node = self.dag.task_dict[key.task_id]
        bound = node.bind(key.map_index, self)
        operator = node.rebuild(bound)
        rec = self.records[key]
        try_number = rec.try_number
        stored = rec.checkpoint
        current = stored["value"] if stored and stored.get("try_number") == try_number else None
        return WorkItem.build(
            dag=self.dag,
            operator=operator,
            run=self.info,
            run_pk=self.run_pk,
            map_index=key.map_index,
            try_number=try_number,
            log_path=self._log_path(key, try_number),
            xcom_max_bytes=self.xcom_max_bytes,
            executor=node.settings.executor or default_executor,
            bound=bound,
            checkpoint=Checkpoint(
                current,
                functools.partial(self._save_checkpoint, key, try_number),
                resumed=self._take_resumed(key),
            ),
        )

    def _take_resumed(self, key: TIKey) -> bool:
        if key in self.resumed_keys:
            self.resumed_keys.discard(key)
            return True
        return False

    async def _save_checkpoint(self, key: TIKey, try_number: int, value: Any) -> None:
        stored = {"try_number": try_number, "value": value}
        if self.checkpoints is not None:
            await self.checkpoints(self.run_pk, key.task_id, key.map_index, stored)
        self.records[key].checkpoint = stored
