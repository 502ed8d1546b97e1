"""The scheduler: the one writer of state, woken by events, one transaction per tick."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from airloop.core.admission import Admission
from airloop.core.outcomes import HANDOVER, Outcome, new_stimulus_id
from airloop.core.specs import TIKey
from airloop.core.stats import FAST_BUCKETS, TASK_BUCKETS, Histogram, HistogramsByLabel
from airloop.core.stimuli import AbortRequested, GraceExpired, Stimulus, StopRequested
from airloop.engine.active_run import ActiveRun, RunResult
from airloop.engine.executor_registry import ExecutorRegistry
from airloop.engine.past_gates import PastGates
from airloop.exceptions import TransientDatabaseError
from airloop.executors.events import OutcomeChannel, TaskEvent, TaskFinished
from airloop.executors.runner import first_line
from airloop.store.records import WriteBatch, WriteResult
from airloop.store.runs import Store, utcnow

log = logging.getLogger(__name__)

#: Task instances handed to executors between two yields to the event loop.
SUBMIT_CHUNK = 256


class Scheduler:
    """Drives every active DAG run.

    Each tick: take every event reported since the last tick (waiting without a
    timer unless a retry or a shutdown deadline is due), let each run's planner
    decide, write all the changes in ONE transaction, then hand the task instances
    that became ready to the executor. Nothing polls.
    """

    def __init__(
        self,
        *,
        store: Store,
        executors: ExecutorRegistry,
        channel: OutcomeChannel,
        shutdown_grace: float,
        default_executor: str,
        admission: Admission,
        min_tick_interval: float = 0.0,
        past_gate_recheck: float = 5.0,
        on_run_finished: Callable[[ActiveRun, RunResult], None] | None = None,
    ) -> None:
        self._admission = admission
        #: Told of each run that ended, once the tick that ended it is written (DAG
        #: callbacks): it must not block (it starts work, it does not do it).
        self._on_run_finished = on_run_finished
        self._store = store
        self._executors = executors
        self._default_executor = default_executor
        self._min_interval = min_tick_interval
        self._channel = channel
        self._grace = shutdown_grace
        self._runs: dict[int, ActiveRun] = {}
        self._new: list[ActiveRun] = []
        self._stop_reason: str | None = None
        self._stop_deadline: float | None = None
        self._stop_requested_at: float | None = None
        self._keep_runs = False
        self._closing = False
        self._holding = False
        #: Aborts asked for (abort_run), handed to the planners at the next tick.
        self._aborts: dict[int, str] = {}
        #: Runs to let go (drop_runs: their DAG's lease moved), at the next tick.
        self._drops: dict[int, str] = {}
        #: depends_on_past: held task instances and their checks (from the store).
        self._gates = PastGates(store, past_gate_recheck)
        self.ticks = 0
        #: How long each tick took (route, plan, write, submit), and finished tries'
        #: durations by DAG: read by /metrics.
        self.tick_seconds = Histogram(FAST_BUCKETS)
        self.task_seconds = HistogramsByLabel(TASK_BUCKETS)

    # -- control --------------------------------------------------------------------

    def add_run(self, run: ActiveRun) -> None:
        if self._stop_reason is not None:
            raise RuntimeError(f"the scheduler is stopping ({self._stop_reason}); no new runs")
        if self._holding:
            run.hold()
        run.durations = self.task_seconds.of(run.info.dag_id)
        self._new.append(run)
        self._channel.nudge()

    def request_stop(
        self, reason: str, *, keep_runs: bool = False, grace: float | None = None
    ) -> None:
        """Stop starting tasks; cancel running ones; fail the runs (within the grace period).

        With ``keep_runs`` (the scheduler service stopping) the runs are left ``running``
        in the store, and so are the task instances cancelled now: the next start
        resumes or retries them (RunPlanner.restore).
        """
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_requested_at = asyncio.get_running_loop().time()
            self._keep_runs = keep_runs
            if grace is not None:
                self._grace = grace
            self._channel.nudge()

    def abort_run(self, run: ActiveRun, reason: str) -> None:
        """Fail one run: at the next tick its planner gets AbortRequested (it cancels
        what runs, starts nothing, and fails the run once nothing runs)."""
        self._aborts.setdefault(run.run_pk, reason)
        self._channel.nudge()

    def drop_runs(self, run_pks: set[int], reason: str) -> None:
        """Let runs go that another scheduler took over (ADR 0041): at the next tick
        their task instances are cancelled here as a handover (external work such as
        a Batch job is left running for the new owner to re-attach), nothing more is
        written about them, and ``run.done`` resolves with the run still 'running'."""
        for run_pk in run_pks:
            self._drops.setdefault(run_pk, reason)
        self._channel.nudge()

    def _apply_drops(self, now: float) -> set[int]:
        """Drop the runs asked for (``drop_runs``); returns their pks."""
        if not self._drops:
            return set()
        drops, self._drops = self._drops, {}
        new = {run.run_pk: run for run in self._new}
        dropped: set[int] = set()
        for run_pk, reason in drops.items():
            run = self._runs.pop(run_pk, None) or new.pop(run_pk, None)
            if run is None:
                continue
            dropped.add(run_pk)
            for key in run.running_keys():
                self._executors.cancel((run_pk, key), f"{HANDOVER}{reason}")
            run.abandon()
            self._gates.forget(run_pk)
            self._aborts.pop(run_pk, None)
            log.warning("%s: let go (%s)", run.label, reason)
            if not run.done.done():
                run.done.set_result(run.keep_result(now, f"handed over: {reason}"))
            run.progressed()
        self._new = list(new.values())
        return dropped

    def pools_changed(self) -> None:
        """The pools were resized (``Engine.resize_pools``): admit again at once."""
        self._channel.nudge()

    def hold_starts(self) -> None:
        """Start no task instance of any run until ``release_starts`` (e.g. the service
        lost its database lock); reports are still taken and written."""
        self._holding = True
        for run in [*self._runs.values(), *self._new]:
            run.hold()

    def release_starts(self) -> None:
        """Start tasks again after ``hold_starts``; every run is planned at the next tick."""
        self._holding = False
        now = asyncio.get_running_loop().time()
        for run in [*self._runs.values(), *self._new]:
            run.unhold(now)
        self._channel.nudge()

    async def drain(self, grace: float) -> bool:
        """Start nothing more and wait up to ``grace`` seconds until no task instance of
        any run is queued or running. True if they all ended; runs stay registered (the
        caller then stops, e.g. ``request_stop(keep_runs=True)``)."""
        self.hold_starts()
        settled = asyncio.Event()
        runs = [*self._runs.values(), *self._new]

        def check(_: ActiveRun | None = None) -> None:
            if all(r.active == 0 or r.done.done() for r in runs):
                settled.set()

        unsubscribe = [run.subscribe(check) for run in runs]
        try:
            check()
            async with asyncio.timeout(grace):
                await settled.wait()
            return True
        except TimeoutError:
            return False
        finally:
            for stop in unsubscribe:
                stop()

    def close(self) -> None:
        """Return from ``serve`` once no run is active."""
        self._closing = True
        self._channel.nudge()

    @property
    def stop_deadline(self) -> float | None:
        """Loop time by which a requested stop gives up waiting for running tasks."""
        return self._stop_deadline

    @property
    def active_runs(self) -> int:
        return len(self._runs) + len(self._new)

    # -- the loop -------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        last = -1e9
        try:
            while not (self._closing and not self._runs and not self._new):
                events = await self._channel.take(self._timeout(loop.time()))
                # Reports trickling in (a few per millisecond) would each cost a
                # transaction; waiting out the rest of a short window lets one tick take
                # them all. A burst arriving after a quiet spell is handled at once.
                wait = self._min_interval - (loop.time() - last)
                if wait > 0 and self._stop_reason is None:
                    await asyncio.sleep(wait)
                    events += await self._channel.take(0)
                last = loop.time()
                await self._tick(events, last, utcnow())
                self.tick_seconds.observe(loop.time() - last)
        except BaseException as exc:
            for run in [*self._runs.values(), *self._new]:
                if not run.done.done():
                    run.done.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("scheduler stopped")
                    )
            raise

    def _timeout(self, now: float) -> float | None:
        wakes = [r.wake_at for r in self._runs.values() if r.wake_at is not None]
        wakes += [
            deadline
            for r in self._runs.values()
            if not r.ending and (deadline := r.deadline) is not None
        ]
        if self._stop_deadline is not None and self._runs:
            wakes.append(self._stop_deadline)
        if self._stop_reason is None and (gates := self._gates.wake_at) is not None:
            wakes.append(gates)
        if not wakes:
            return None
        return max(0.0, min(wakes) - now)

    async def _tick(self, events: list[TaskEvent], now: float, now_dt: datetime) -> None:
        """Route -> plan -> write -> submit/cancel. The decisions (what starts, what is
        cancelled, when a stopping or aborted run ends) are the planners'."""
        self.ticks += 1
        batch = WriteBatch()
        self._apply_drops(now)
        self._adopt_new_runs(batch, now, now_dt)
        stimuli = self._route(events, batch, now)
        if self._gates.due(now) and self._stop_reason is None:
            # Past gates answered from the store (what earlier ticks wrote): this
            # tick's stimuli, so a held instance starts in the tick that learns of it.
            for run_pk, met in (await self._gates.check(now, set(self._runs))).items():
                stimuli[run_pk].extend(met)
        to_start, to_cancel = self._plan(stimuli, batch, now, now_dt)
        self._note_gates()
        results = [
            (r, r.keep_result(now) if r.kept else r.finish(batch, now, now_dt))
            for r in self._runs.values()
            if r.finished or r.kept
        ]
        written = await self._write(batch)
        if written.refused:
            self._refused(written)
        if written.stale_runs:
            # Fenced out: another scheduler holds these runs' DAG now.
            self.drop_runs(set(written.stale_runs), "its DAG's lease moved to another scheduler")
        if self._drops:
            gone = self._apply_drops(now)
            to_cancel = [c for c in to_cancel if c[0].run_pk not in gone]
            to_start = [s for s in to_start if s[0].run_pk not in gone]
            results = [r for r in results if r[0].run_pk not in gone]
        for run, key, reason in to_cancel:
            self._executors.cancel((run.run_pk, key), reason)
        await self._submit_all(to_start, now_dt)
        for run, result in results:
            del self._runs[run.run_pk]
            self._gates.forget(run.run_pk)
            if self._on_run_finished is not None and not run.kept:
                try:
                    self._on_run_finished(run, result)
                except Exception:
                    log.exception("%s: the run-finished hook failed", run.label)
            if not run.done.done():
                run.done.set_result(result)
        for run in self._runs.values():
            run.progressed()
        for run, _ in results:
            run.progressed()

    def _note_gates(self) -> None:
        """Hand newly held task instances to the past gates; a run that settled a task
        instance wakes the held runs of its DAG (checked at the next tick)."""
        for run in self._runs.values():
            gated = run.take_gated()
            if gated:
                self._gates.hold(run, gated)
            if run.take_settled() or run.finished:
                self._gates.settled(run.info.dag_id)
        if self._stop_reason is None and self._gates.due(asyncio.get_running_loop().time()):
            self._channel.nudge()

    def _adopt_new_runs(self, batch: WriteBatch, now: float, now_dt: datetime) -> None:
        for run in self._new:
            self._runs[run.run_pk] = run
            if self._stop_reason is None:
                run.initial_plan(batch, now, now_dt)
        self._new.clear()
        if self._stop_reason is not None and self._stop_deadline is None:
            self._stop_deadline = now + self._grace
            log.warning("stopping (%s): cancelling running task instances", self._stop_reason)

    def _route(
        self, events: list[TaskEvent], batch: WriteBatch, now: float
    ) -> dict[int, list[Stimulus]]:
        """Each run's stimuli for this tick: a stop or abort first (a keeping stop must
        see the interrupted reports), then the reports, then a grace expiry (it settles
        what is still running after them)."""
        by_run: dict[int, list[Stimulus]] = defaultdict(list)
        expired: list[tuple[int, Stimulus]] = []
        for run in self._runs.values():
            for stimulus in self._lifecycle(run, now):
                if isinstance(stimulus, GraceExpired):
                    expired.append((run.run_pk, stimulus))
                else:
                    by_run[run.run_pk].append(stimulus)
        for event in events:
            target = self._runs.get(event.run_pk)
            if target is None:
                continue  # a late report for a run already finished
            planner_event = target.on_event(event, batch)
            if planner_event is not None:
                by_run[event.run_pk].append(planner_event)
        for run_pk, stimulus in expired:
            by_run[run_pk].append(stimulus)
        return by_run

    def _lifecycle(self, run: ActiveRun, now: float) -> list[Stimulus]:
        """Stop, abort and grace expiry, as the run's planner should hear them."""
        if run.finished or run.kept:
            return []
        found: list[Stimulus] = []
        if self._stop_reason is not None:
            if run.stopping is None:
                found.append(
                    StopRequested(
                        self._stop_reason, self._keep_runs, new_stimulus_id("stop-requested")
                    )
                )
            assert self._stop_deadline is not None
            if now >= self._stop_deadline:
                if not self._keep_runs:
                    for key in run.running_keys():
                        log.error("%s %s did not stop within the grace period", run.label, key)
                found.append(GraceExpired(self._grace, new_stimulus_id("grace-expired")))
            return found
        reason = self._aborts.pop(run.run_pk, None)
        deadline = run.deadline
        if reason is None and deadline is not None and now >= deadline:
            reason = run.timeout_reason()  # dagrun_timeout, whoever runs the scheduler
        if reason is not None and not run.ending:
            found.append(AbortRequested(reason, new_stimulus_id("abort-requested")))
        return found

    def _plan(
        self, stimuli: dict[int, list[Stimulus]], batch: WriteBatch, now: float, now_dt: datetime
    ) -> tuple[list[tuple[ActiveRun, TIKey]], list[tuple[ActiveRun, TIKey, str]]]:
        to_start: list[tuple[ActiveRun, TIKey]] = []
        to_cancel: list[tuple[ActiveRun, TIKey, str]] = []
        for run in self._runs.values():
            run_stimuli = stimuli.get(run.run_pk)
            if run_stimuli or (run.wake_at is not None and run.wake_at <= now):
                cancel = run.plan(run_stimuli or [], batch, now, now_dt)
                reason = run.stopping or run.abort_reason or run.fail_fast_reason or "cancelled"
                to_cancel += [(run, key, reason) for key in cancel]
        # Admission over every run at once: pools, each DAG's max_active_tasks and the
        # executors' capacity are shared, and priority holds across runs.
        self._admission.admit()
        for run in self._runs.values():
            to_start += [(run, k) for k in run.collect_admitted(batch, now, now_dt)]
            run.flush(batch)
        return to_start, to_cancel

    async def _submit_all(self, to_start: list[tuple[ActiveRun, TIKey]], now_dt: datetime) -> None:
        for i, (run, key) in enumerate(to_start, 1):
            self._submit(run, key, now_dt)
            if i % SUBMIT_CHUNK == 0:
                # Thousands of task instances ready at once: let the ones just submitted
                # take their first step before building more, so neither this loop nor
                # the burst of starts holds the event loop for long (the watchdog
                # measured 0.3 s and 0.8 s at 5,000 tasks).
                await asyncio.sleep(0)

    def _refused(self, written: WriteResult) -> None:
        """Some starts were refused: their rows had moved on, so another scheduler
        drives those runs now (ADR 0041). Nothing of those runs is started (not even
        the starts that were written: the run is no longer this scheduler's, and its
        new owner settles a queued try nobody runs as lost); the runs are dropped.
        """
        by_run: dict[int, list[str]] = defaultdict(list)
        for r in written.refused:
            key = TIKey(r.task_id, r.map_index)
            found = (
                "no such row"
                if r.found_try_number is None
                else (f"the row holds try {r.found_try_number} ({r.found_state})")
            )
            by_run[r.run_pk].append(f"{key} (try {r.try_number}: {found})")
        lost = set(by_run)
        for run_pk, refused in by_run.items():
            run = self._runs.get(run_pk)
            label = run.label if run is not None else f"run {run_pk}"
            log.error(
                "%s: not starting %s: another writer changed the task instance first; "
                "this scheduler no longer drives the run",
                label,
                ", ".join(refused),
            )
        self.drop_runs(lost, "another writer started its task instances first")

    async def _write(self, batch: WriteBatch) -> WriteResult:
        """Write the tick's batch, retrying with backoff while the database is unusable.

        The batch is kept until it commits, so nothing reported is lost and the planner
        never runs ahead of the database by more than this batch. Gives up only when a
        stop was requested and the grace period has passed.
        """
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                return await self._store.write(batch)
            # Any other DatabaseError (a violated constraint) propagates: retrying
            # the same batch cannot help.
            except TransientDatabaseError as exc:
                # The grace counts from the stop request, not from the first failed
                # write: a stop takes at most the grace period (plus the last write).
                if (
                    self._stop_requested_at is not None
                    and loop.time() - self._stop_requested_at > self._grace
                ):
                    raise
                log.error(
                    "cannot write %d changes to the database (%s); retrying in %.1fs",
                    len(batch),
                    first_line(exc),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _submit(self, run: ActiveRun, key: TIKey, now_dt: datetime) -> None:
        try:
            item = run.work_item(key, self._default_executor)
        except Exception as exc:  # noqa: BLE001 - reported as the task instance's failure
            # The inputs could not be resolved (e.g. mapping over a value that is not a
            # list): the task instance fails like any task, through the channel.
            log.warning("%s %s: cannot start: %s", run.label, key, exc)
            self._channel.put(
                TaskFinished(
                    run.run_pk,
                    key,
                    run.try_number(key),
                    now_dt,
                    Outcome.FAILED,
                    reason=f"cannot resolve inputs: {first_line(exc)}",
                    retryable=False,
                )
            )
            return
        self._executors.get(item.executor).submit(item)
