"""The planner: events about one DAG run's task instances in, decisions out.

Pure and synchronous, in the manner of dask.distributed's worker state machine: the
scheduler feeds it what happened (a task started, succeeded, failed, was skipped) and
the current time, and gets back a :class:`Plan` -- state changes to record, mapped
tasks to expand, task instances to start now, the run's final state when it is over,
and when to wake up next for a pending retry. It keeps its own incremental view of
the run so each event costs work proportional to the tasks it affects, not to the
size of the DAG.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count

from airloop.core.admission import ActiveLimit, Admission
from airloop.core.outcomes import Outcome
from airloop.core.plan import Change, Expansion, Plan, PlanningError, StoredTI
from airloop.core.pools import PoolLedger
from airloop.core.skips import effective_leaves, fail_fast_reason, skip_reason
from airloop.core.specs import UNMAPPED, MapSource, TaskSpec, TIKey
from airloop.core.states import (
    ACTIVE,
    FAILED_LIKE,
    TERMINAL,
    TRANSITIONS,
    DagRunState,
    InvalidTransition,
    TaskState,
)
from airloop.core.stimuli import (
    AbortRequested,
    Event,
    Failed,
    GraceExpired,
    Lifecycle,
    PastGateMet,
    Skipped,
    Started,
    Stimulus,
    StopRequested,
    Succeeded,
)
from airloop.core.trigger_rules import Verdict, evaluate


@dataclass(slots=True)
class _TI:
    key: TIKey
    state: TaskState = TaskState.NONE
    try_number: int = 0
    next_retry_at: float | None = None
    #: Queue it again under the same try number (resumed after a restart).
    keep_try: bool = False


#: Transitions remembered per planner for ``story`` (the newest; older ones drop off).
STORY_LENGTH = 20_000
#: The ready-heap priority of a try resuming under the same try number: before any
#: priority weight a task may have.
RESUME_FIRST = -(1 << 62)

_ticks = count(1)


def _tick_id(kind: str) -> str:
    return f"{kind}-{next(_ticks)}"


def _counter(state: TaskState, n: int) -> Counter[TaskState]:
    """``Counter({state: n})`` without ``Counter.__init__`` (a Python-level ``update``,
    about four times the cost): the planner makes two per task when it is built."""
    counter: Counter[TaskState] = Counter.__new__(Counter)
    counter[state] = n
    return counter


#: The events about one task instance's try (``_apply``).
_TASK_EVENTS = (Started, Succeeded, Failed, Skipped)

#: The default of the setting ``max_map_length``: most instances one expansion may make.
DEFAULT_MAX_MAP_LENGTH = 100_000


class RunPlanner:
    """Decides, event by event, what happens next in one DAG run."""

    #: Check every incremental counter after each plan (``validate``). Off in
    #: production (it costs a pass over the run); the test suite switches it on.
    checking = False

    def __init__(
        self,
        specs: Sequence[TaskSpec],
        *,
        max_active_tasks: int | ActiveLimit,
        pools: PoolLedger | None = None,
        admission: Admission | None = None,
        rng: random.Random | None = None,
        fail_fast: bool = False,
        task_limits: Mapping[str, ActiveLimit] | None = None,
        max_map_length: int = DEFAULT_MAX_MAP_LENGTH,
    ) -> None:
        """``admission`` is shared by every run of an engine (pools, DAG limits,
        executor capacity, priority across runs); without one the planner makes its
        own over ``pools`` and admits alone. With ``fail_fast`` (the DAG's), the first
        task to fail stops the run: what runs is cancelled (``to_cancel``), what has
        not started is skipped (teardowns excepted) and the run fails. ``task_limits``
        are the tasks' ``max_active_tis_per_dag`` counters shared by the DAG's runs
        (``Admission.task_limit``); a task with a limit and no counter gets its own."""
        if admission is None:
            if pools is None:
                raise PlanningError("a planner needs pools or an admission")
            admission = Admission(pools)
        pools = admission.pools
        if max_map_length < 1:
            raise PlanningError(f"max_map_length must be >= 1, got {max_map_length}")
        self._max_map_length = max_map_length
        if isinstance(max_active_tasks, int):
            if max_active_tasks < 1:
                raise PlanningError(f"max_active_tasks must be >= 1, got {max_active_tasks}")
            max_active_tasks = ActiveLimit(max_active_tasks)
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.task_id in self._specs:
                raise PlanningError(f"duplicate task id {spec.task_id!r}")
            self._specs[spec.task_id] = spec
        downstream: dict[str, list[str]] = {}
        for spec in specs:
            for up in spec.upstream:
                if up not in self._specs:
                    raise PlanningError(f"task {spec.task_id!r} depends on unknown task {up!r}")
                downstream.setdefault(up, []).append(spec.task_id)
            for src in spec.map_sources:
                for source in src.upstreams:
                    if source not in spec.upstream:
                        raise PlanningError(
                            f"task {spec.task_id!r} maps over {source!r} but does not depend on it"
                        )
            for up in spec.per_index_upstream:
                other = self._specs.get(up)
                if (
                    up not in spec.upstream
                    or other is None
                    or not spec.is_mapped
                    or other.map_sources != spec.map_sources
                    or other.is_setup
                ):
                    raise PlanningError(
                        f"task {spec.task_id!r}: per-index upstream {up!r} must be a direct "
                        "upstream, not a setup, mapped over the same sources"
                    )
            pools.check(spec.task_id, spec.pool, spec.pool_slots)
        # A task without downstream tasks (most, in a wide DAG) shares one empty tuple.
        self._downstream: dict[str, Sequence[str]] = {t: downstream.get(t, ()) for t in self._specs}
        #: The tasks that decide the run's state (teardowns aside: ``effective_leaves``).
        self._leaves = effective_leaves(self._specs, self._downstream)
        self._fail_fast = fail_fast
        #: Why a fail_fast run is being stopped, once a task failed.
        self._fail_fast_reason: str | None = None
        #: For each task, the states of its upstream SETUP task instances (teardowns'
        #: all_done_setup_success), kept like ``_up_counts``; only tasks with some.
        self._up_setup: dict[str, Counter[TaskState]] = {}
        self._up_setup_total: dict[str, int] = {}
        setup_ids = {s.task_id for s in specs if s.is_setup}
        #: Each task's max_active_tis_per_dag counter (shared by the DAG's runs).
        self._task_limits: dict[str, ActiveLimit] = {}
        limited: list[str] = []
        past_gated: list[str] = []
        # One pass decides, once per task, which of the counters, limits and gates
        # apply to it; a task with none of them never touches them afterwards.
        for spec in specs:
            setups = sum(1 for u in spec.upstream if u in setup_ids) if setup_ids else 0
            if setups:
                self._up_setup[spec.task_id] = Counter({TaskState.NONE: setups})
                self._up_setup_total[spec.task_id] = setups
            if spec.depends_on_past:
                past_gated.append(spec.task_id)
            if spec.max_active_tis_per_dagrun is not None:
                if spec.max_active_tis_per_dagrun < 1:
                    raise PlanningError(
                        f"task {spec.task_id!r}: max_active_tis_per_dagrun must be >= 1, "
                        f"got {spec.max_active_tis_per_dagrun}"
                    )
                limited.append(spec.task_id)
            if spec.max_active_tis_per_dag is not None:
                shared = (task_limits or {}).get(spec.task_id)
                try:
                    self._task_limits[spec.task_id] = shared or ActiveLimit(
                        spec.max_active_tis_per_dag,
                        f"max_active_tis_per_dag of task {spec.task_id!r}",
                    )
                except ValueError as exc:
                    raise PlanningError(str(exc)) from None
                limited.append(spec.task_id)
        #: Tasks with a per-task limit (checked when one of their instances is admitted).
        self._limited: frozenset[str] = frozenset(limited)
        #: Tasks with a depends_on_past gate (the others are scheduled without a look).
        self._past_gated: frozenset[str] = frozenset(past_gated)
        #: Ready instances of a task at its per-task limit, set aside from the pool
        #: heaps (so they do not block other tasks) until the task has room again.
        self._capped: dict[str, list[tuple[int, int, TIKey]]] = {}
        #: depends_on_past: instances held at ``none`` until ``PastGateMet``, and the
        #: instances whose gate was met.
        self._gated: set[TIKey] = set()
        self._gate_open: set[TIKey] = set()
        self._pools = pools
        self._admission = admission
        #: ``admission.next_seq``, bound once (called per task instance made ready).
        self._next_ready_seq = admission.next_seq
        self._limit = max_active_tasks
        #: Admissions made by ``Admission.admit`` for this run, until ``take_admitted``.
        self._admitted = Plan()
        self._head_pool: str | None = None
        self._unchecked = 0
        self._rng = rng or random.Random()
        self._tis: dict[str, dict[int, _TI]] = {t: {UNMAPPED: _TI(TIKey(t))} for t in self._specs}
        none = TaskState.NONE
        self._counts: dict[str, Counter[TaskState]] = {t: _counter(none, 1) for t in self._specs}
        self._done: dict[str, int] = dict.fromkeys(self._specs, 0)
        # For each task, the states of all its upstream task instances, kept up to date
        # on every transition, so a trigger rule is evaluated in O(1) even for a task
        # joining thousands of upstreams.
        self._up_counts: dict[str, Counter[TaskState]] = {
            t: _counter(none, len(spec.upstream)) for t, spec in self._specs.items()
        }
        self._up_total: dict[str, int] = {t: len(s.upstream) for t, s in self._specs.items()}
        #: Tasks with per-index upstreams: the states of their other upstreams'
        #: instances, and (once expanded) per map index the states of the same-index
        #: instances of their per-index upstreams.
        self._ext_counts: dict[str, Counter[TaskState]] = {}
        self._ext_total: dict[str, int] = {}
        self._idx_counts: dict[str, dict[int, Counter[TaskState]]] = {}
        for t, s in self._specs.items():
            if s.per_index_upstream:
                ext = len(s.upstream) - len(s.per_index_upstream)
                self._ext_counts[t] = Counter({TaskState.NONE: ext})
                self._ext_total[t] = ext
        #: Tasks whose transitions update only their downstream tasks' plain counters
        #: (not a setup, no downstream task with per-index upstreams): decided once
        #: here, so ``_set`` does no more for them than before those features.
        self._plain_down: frozenset[str] = (
            frozenset(
                t
                for t, s in self._specs.items()
                if not s.is_setup and not any(d in self._ext_counts for d in self._downstream[t])
            )
            if self._ext_counts or self._up_setup
            else frozenset(self._specs)
        )
        #: Tasks with downstream tasks: a transition of any other task touches no
        #: other task's counters (one set look-up in ``_set``).
        self._fanning: frozenset[str] = frozenset(downstream)
        self._pending_keys: deque[TIKey] = deque()
        self._pending_key_set: dict[TIKey, str] = {}
        # Tasks to (re)evaluate: a worklist, not recursion, so a failure cascading down
        # a 10,000-task chain does not exhaust the stack.
        # Each with the stimulus that queued it, so a cascade carries the cause's id.
        self._pending: deque[str] = deque()
        self._pending_set: dict[str, str] = {}
        self._stimulus = ""
        #: (key, old, new, stimulus id) of recent transitions: see ``story``.
        self._history: deque[tuple[TIKey, TaskState, TaskState, str]] = deque(maxlen=STORY_LENGTH)
        self._unfinished = len(self._specs)
        self._total: Counter[TaskState] = Counter({TaskState.NONE: len(self._specs)})
        self._active = 0
        self._output_lengths: dict[str, int | None] = {}
        self._ready: dict[str, list[tuple[int, int, TIKey]]] = {p: [] for p in pools.pools}
        self._retry_heap: list[tuple[float, int, TIKey]] = []
        self._seq = 0
        self._state: DagRunState | None = None
        self._aborted = False
        self._held = False
        # Lifecycle (see StopRequested, AbortRequested, GraceExpired).
        self._stop_reason: str | None = None
        self._abort_reason: str | None = None
        self._keep = False
        self._kept = False
        #: Tries cancelled by a keeping stop: still queued/running for the next start.
        self._parked: set[TIKey] = set()

    # -- queries --------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._state is not None

    @property
    def run_state(self) -> DagRunState | None:
        return self._state

    @property
    def stop_reason(self) -> str | None:
        """Why the run is being stopped (StopRequested), once it is."""
        return self._stop_reason

    @property
    def abort_reason(self) -> str | None:
        """Why the run is being failed (AbortRequested), once it is."""
        return self._abort_reason

    @property
    def fail_fast_reason(self) -> str | None:
        """Why a fail_fast run is stopping (a task failed), once it is."""
        return self._fail_fast_reason

    @property
    def kept(self) -> bool:
        """Left unfinished on purpose by a keeping stop: resumed at the next start."""
        return self._kept

    @property
    def ending(self) -> bool:
        """A stop or an abort began: nothing more starts."""
        return self._stop_reason is not None or self._abort_reason is not None

    def state_of(self, key: TIKey) -> TaskState:
        return self._tis[key.task_id][key.map_index].state

    def try_number(self, key: TIKey) -> int:
        return self._tis[key.task_id][key.map_index].try_number

    def ti_state(self, key: TIKey) -> tuple[TaskState, int]:
        """The task instance's state and try number, in one lookup."""
        ti = self._tis[key.task_id][key.map_index]
        return ti.state, ti.try_number

    def task_done(self, task_id: str) -> bool:
        """Every instance of the task (all map indexes) is in a terminal state."""
        return self._done[task_id] == len(self._tis[task_id])

    def keys(self, task_id: str) -> list[TIKey]:
        return [ti.key for ti in self._tis[task_id].values()]

    def counts(self) -> dict[TaskState, int]:
        """How many task instances of the run are in each state (kept up to date, O(1))."""
        return {state: n for state, n in self._total.items() if n}

    @property
    def waiting(self) -> bool:
        """Some task instance is ready and waits for a pool slot or max_active_tasks."""
        return any(self._ready.values()) or bool(self._capped)

    def waiting_slots(self) -> tuple[dict[str, int], dict[str, int]]:
        """Slots of each pool that this run's ready task instances wait for (the
        demand a scheduler reports to share pools, ADR 0041), and apart from them the
        slots of tries waiting to resume (restored queued or running: their work may
        be running already, so they count as in use). Instances set aside at their
        task's per-task limit are left out, and so are the new starts of a run that
        admits nothing now (ending, held, at its DAG's max_active_tasks): they would
        not take a slot if one were free. O(ready instances): once per renewal."""
        idle = self._aborted or self._held or self.ending or self._limit.free() <= 0
        specs, tis = self._specs, self._tis
        waiting: dict[str, int] = {}
        resuming: dict[str, int] = {}
        for pool, heap in self._ready.items():
            new = again = 0
            for _, _, key in heap:
                ti = tis[key.task_id][key.map_index]
                if ti.state is TaskState.SCHEDULED:
                    if ti.keep_try:
                        again += specs[key.task_id].pool_slots
                    elif not idle:
                        new += specs[key.task_id].pool_slots
            if new:
                waiting[pool] = new
            if again:
                resuming[pool] = again
        return waiting, resuming

    def pool_short(self, pool: str) -> bool:
        """The best ready task instance of ``pool`` needs more slots than are free
        (what may be worth asking other schedulers for at once)."""
        if self._aborted or self._held or self.ending or self._limit.free() <= 0:
            return False
        heap = self._ready.get(pool)
        if not heap:
            return False
        return self._specs[heap[0][2].task_id].pool_slots > self._pools.free(pool)

    @property
    def gated(self) -> frozenset[TIKey]:
        """Task instances held by their ``depends_on_past`` gate."""
        return frozenset(self._gated)

    @property
    def active(self) -> int:
        """Task instances queued or running: handed to an executor and not yet finished."""
        return self._active

    def task_counts(self, task_id: str) -> Mapping[TaskState, int]:
        return self._counts[task_id]

    def spec(self, task_id: str) -> TaskSpec:
        return self._specs[task_id]

    def validate(self) -> None:
        """Recompute every incremental counter from the task instances and compare;
        raise ``PlanningError`` naming each one that drifted (a bug in the planner)."""
        problems: list[str] = []
        total: Counter[TaskState] = Counter()
        unfinished = 0
        active = 0
        counts: dict[str, Counter[TaskState]] = {}
        for task_id, tis in self._tis.items():
            c: Counter[TaskState] = Counter(ti.state for ti in tis.values())
            counts[task_id] = c
            total.update(c)
            done = sum(c[s] for s in TERMINAL)
            unfinished += len(tis) - done
            active += sum(c[s] for s in ACTIVE)
            if +self._counts[task_id] != +c:
                problems.append(f"counts of {task_id!r}: kept {dict(+self._counts[task_id])}")
            if self._done[task_id] != done:
                problems.append(f"done of {task_id!r}: kept {self._done[task_id]}, is {done}")
        for task_id, spec in self._specs.items():
            up: Counter[TaskState] = Counter()
            for u in spec.upstream:
                up.update(counts[u])
            if +self._up_counts[task_id] != +up:
                problems.append(
                    f"upstream counts of {task_id!r}: kept {dict(+self._up_counts[task_id])}, are {dict(+up)}"
                )
            if task_id in self._up_setup:
                setup: Counter[TaskState] = Counter()
                for u in spec.upstream:
                    if self._specs[u].is_setup:
                        setup.update(counts[u])
                if +self._up_setup[task_id] != +setup:
                    problems.append(
                        f"upstream setup counts of {task_id!r}: kept "
                        f"{dict(+self._up_setup[task_id])}, are {dict(+setup)}"
                    )
            if spec.per_index_upstream:
                ext_ups = [u for u in spec.upstream if u not in spec.per_index_upstream]
                ext: Counter[TaskState] = sum((counts[u] for u in ext_ups), Counter())
                if +self._ext_counts[task_id] != +ext:
                    problems.append(f"other upstream counts of {task_id!r} drifted")
                if self._ext_total[task_id] != sum(len(self._tis[u]) for u in ext_ups):
                    problems.append(f"other upstream total of {task_id!r} drifted")
                if task_id in self._idx_counts:
                    for i, kept in self._idx_counts[task_id].items():
                        if +kept != +self._index_counts(spec, i):
                            problems.append(f"per-index counts of {task_id}[{i}] drifted")
            up_total = sum(len(self._tis[u]) for u in spec.upstream)
            if self._up_total[task_id] != up_total:
                problems.append(
                    f"upstream total of {task_id!r}: kept {self._up_total[task_id]}, is {up_total}"
                )
        if +self._total != +total:
            problems.append(f"run counts: kept {dict(+self._total)}, are {dict(+total)}")
        if self._unfinished != unfinished:
            problems.append(f"unfinished: kept {self._unfinished}, is {unfinished}")
        if self._active != active:
            problems.append(f"active: kept {self._active}, is {active}")
        if self._limit.used < active:
            problems.append(f"max_active_tasks used {self._limit.used} < this run's {active}")
        for task_id, limit in self._task_limits.items():
            mine = sum(counts[task_id][s] for s in ACTIVE)
            if limit.used < mine:
                problems.append(f"{limit.name} used {limit.used} < this run's {mine}")
        for key in self._gated:
            if self.state_of(key) is not TaskState.NONE:
                problems.append(f"{key} is held by its past gate but is {self.state_of(key)}")
        if not self._aborted:
            ready = {key for heap in self._ready.values() for _, _, key in heap}
            ready |= {key for heap in self._capped.values() for _, _, key in heap}
            scheduled = {
                ti.key
                for tis in self._tis.values()
                for ti in tis.values()
                if ti.state is TaskState.SCHEDULED
            }
            if ready != scheduled:
                problems.append(f"ready heaps hold {sorted(map(str, ready ^ scheduled))} wrongly")
            waiting = {key for _, _, key in self._retry_heap}
            for tis in self._tis.values():
                for ti in tis.values():
                    if ti.state is TaskState.UP_FOR_RETRY and ti.key not in waiting:
                        problems.append(f"{ti.key} waits for a retry but is not in the retry heap")
        if problems:
            raise PlanningError("planner counters drifted: " + "; ".join(problems))

    # -- driving --------------------------------------------------------------------

    def story(self, key: TIKey) -> list[tuple[TaskState, TaskState, str]]:
        """The task instance's recent transitions, oldest first: (old, new, stimulus id)."""
        return [(old, new, sid) for k, old, new, sid in self._history if k == key]

    def start(self, now: float, *, admit: bool = True) -> Plan:
        """Evaluate every task once: roots and ALWAYS tasks become ready."""
        plan = Plan()
        self._stimulus = _tick_id("start")
        self._admission.register(self)
        if self._pending:  # pragma: no cover - nothing is queued before the start
            for task_id in self._specs:
                self._queue_evaluation(task_id)
        else:  # every task, in order: what queueing each one would do, in one go
            self._pending_set = dict.fromkeys(self._specs, self._stimulus)
            self._pending.extend(self._specs)
        self._finish_plan(plan, now, admit=admit)
        return plan

    def restore(
        self,
        stored: Iterable[StoredTI],
        output_lengths: Mapping[str, int | None],
        now: float,
        lost_reason: str = "scheduler lost while running",
        *,
        admit: bool = True,
    ) -> Plan:
        """Start from what the store recorded (instead of ``start``), after a restart.

        Queued and running task instances that can resume are scheduled again under
        the same try; those that cannot (they may have started) are failed with
        ``lost_reason`` and retried as a new try under their retry policy; retries
        wait for their time.
        """
        by_task: dict[str, dict[int, StoredTI]] = {}
        for row in stored:
            if row.key.task_id in self._specs:  # a task removed from the DAG is history
                by_task.setdefault(row.key.task_id, {})[row.key.map_index] = row
        for task_id, rows in by_task.items():
            self._tis[task_id] = {
                i: _TI(r.key, r.state, r.try_number, r.next_retry_at) for i, r in rows.items()
            }
        self._output_lengths.update(output_lengths)
        self._recount()
        plan = Plan()
        self._stimulus = _tick_id("restore")
        self._admission.register(self)
        lost: list[Event] = []
        for task_id, rows in by_task.items():
            spec = self._specs[task_id]
            for index, row in rows.items():
                ti = self._tis[task_id][index]
                if row.state in ACTIVE:
                    # As if still running: it holds its slot until it is settled below,
                    # even past the pool's size or this scheduler's share (it runs
                    # already, e.g. a Batch job adopted from another scheduler).
                    self._pools.hold(spec.pool, spec.pool_slots)
                    self._active += 1
                    self._limit.used += 1
                    if task_id in self._task_limits:
                        self._task_limits[task_id].used += 1
                    if spec.executor:
                        self._admission.take_executor(spec.executor)
                    # A queued try was handed to an executor: it may have started.
                    # Only a try that can re-attach (a checkpoint of this try, or a
                    # resumable operator) goes on under its number; any other is lost
                    # and retried as a new try, so no try ever starts twice (ADR 0041).
                    if row.resumable:
                        ti.keep_try = True
                        self._set(ti, TaskState.SCHEDULED, plan)
                    else:
                        lost.append(Failed(row.key, lost_reason, outcome=Outcome.LOST))
                elif row.state is TaskState.SCHEDULED:
                    heapq.heappush(
                        self._ready[spec.pool],
                        (-spec.priority_weight, self._admission.next_seq(), row.key),
                    )
                elif row.state is TaskState.UP_FOR_RETRY:
                    at = row.next_retry_at if row.next_retry_at is not None else now
                    heapq.heappush(self._retry_heap, (at, self._next_seq(), row.key))
        for event in lost:
            self._apply(event, now, plan)
        if self._fail_fast and self._fail_fast_reason is None:
            # Stopped by fail_fast before the restart: stop what is left again.
            failed = next(
                (
                    ti.key
                    for task_id, tis in self._tis.items()
                    if not self._specs[task_id].is_teardown
                    or self._specs[task_id].on_failure_fail_dagrun
                    for ti in tis.values()
                    if ti.state is TaskState.FAILED
                ),
                None,
            )
            if failed is not None:
                self._stop_fast(failed, plan)
        for task_id in self._specs:
            self._queue_evaluation(task_id)
            self._settle_cleared_instances(task_id, plan)
        self._finish_plan(plan, now, admit=admit)
        return plan

    def _settle_cleared_instances(self, task_id: str, plan: Plan) -> None:
        """An expanded task with some instances back at ``none`` (cleared one by one):
        they follow the task's trigger rule like a task that was never run."""
        tis = self._tis[task_id]
        if UNMAPPED in tis or task_id in self._idx_counts:
            return  # per-index instances are evaluated one by one (``_evaluate``)
        waiting = [ti for ti in tis.values() if ti.state is TaskState.NONE]
        if not waiting:
            return
        verdict = self._verdict(task_id)
        target = {
            Verdict.READY: TaskState.SCHEDULED,
            Verdict.SKIP: TaskState.SKIPPED,
            Verdict.UPSTREAM_FAILED: TaskState.UPSTREAM_FAILED,
        }.get(verdict)
        if target is TaskState.SCHEDULED:
            for ti in waiting:
                self._schedule(ti, plan)
        elif target is not None:
            for ti in waiting:
                self._set(ti, target, plan)

    def _recount(self) -> None:
        """Rebuild every counter from the task instances (after ``restore``)."""
        self._total = Counter()
        self._unfinished = 0
        for task_id, tis in self._tis.items():
            counts: Counter[TaskState] = Counter(ti.state for ti in tis.values())
            self._counts[task_id] = counts
            self._total.update(counts)
            self._done[task_id] = sum(counts[s] for s in TERMINAL)
            self._unfinished += len(tis) - self._done[task_id]
        for task_id, spec in self._specs.items():
            up: Counter[TaskState] = Counter()
            for u in spec.upstream:
                up.update(self._counts[u])
            self._up_counts[task_id] = up
            self._up_total[task_id] = sum(len(self._tis[u]) for u in spec.upstream)
            if task_id in self._up_setup:
                setups = [u for u in spec.upstream if self._specs[u].is_setup]
                self._up_setup[task_id] = sum((self._counts[u] for u in setups), Counter())
                self._up_setup_total[task_id] = sum(len(self._tis[u]) for u in setups)
            if spec.per_index_upstream:
                ext_ups = [u for u in spec.upstream if u not in spec.per_index_upstream]
                self._ext_counts[task_id] = sum((self._counts[u] for u in ext_ups), Counter())
                self._ext_total[task_id] = sum(len(self._tis[u]) for u in ext_ups)
                if UNMAPPED in self._tis[task_id]:
                    self._idx_counts.pop(task_id, None)
                else:
                    self._idx_counts[task_id] = {
                        i: self._index_counts(spec, i) for i in self._tis[task_id]
                    }

    def handle(
        self, events: Iterable[Stimulus], now: float, stimulus_id: str = "", *, admit: bool = True
    ) -> Plan:
        """Apply ``events`` in order; then start what became ready (with ``admit``;
        otherwise the caller runs ``Admission.admit`` over every run, then collects
        with ``take_admitted``).

        Changes not caused by one event (retries released, admissions) carry
        ``stimulus_id`` (a fresh ``tick-N`` id if none is given).
        """
        plan = Plan()
        tick = stimulus_id or _tick_id("tick")
        for event in events:
            self._stimulus = event.stimulus_id or tick
            if isinstance(event, _TASK_EVENTS):  # the common case first: one check
                self._apply(event, now, plan)
            elif isinstance(event, StopRequested | AbortRequested | GraceExpired):
                self._lifecycle(event, now, plan)
            elif isinstance(event, PastGateMet):
                self._open_gate(event.key, plan)
            else:  # pragma: no cover - exhaustive
                self._apply(event, now, plan)
        self._stimulus = tick
        self._finish_plan(plan, now, admit=admit)
        return plan

    def _lifecycle(self, event: Lifecycle, now: float, plan: Plan) -> None:
        if self._state is not None or self._kept:
            return  # over already: nothing to stop
        if isinstance(event, StopRequested):
            if self._stop_reason is not None:
                return
            self._stop_reason = event.reason
            self._keep = event.keep
        elif isinstance(event, AbortRequested):
            if self.ending:
                return
            self._abort_reason = event.reason
        else:
            self._expire(event, now, plan)
            return
        self._held = True
        plan.to_cancel.extend(
            ti.key for tis in self._tis.values() for ti in tis.values() if ti.state in ACTIVE
        )

    def _expire(self, event: GraceExpired, now: float, plan: Plan) -> None:
        """The grace is over: settle what still runs now."""
        if self._stop_reason is None:
            return
        if self._keep:
            self._kept = True
            plan.kept = True
            return
        reason = (
            f"interrupted: {self._stop_reason}; did not stop within the "
            f"{event.grace:g}s grace period"
        )
        stuck = [ti.key for tis in self._tis.values() for ti in tis.values() if ti.state in ACTIVE]
        for key in stuck:
            self._apply(
                Failed(key, reason, retryable=False, outcome=Outcome.INTERRUPTED), now, plan
            )

    def _settle_ending(self, plan: Plan) -> None:
        """A stop or abort under way: end the run once nothing (outstanding) runs."""
        if self._state is not None or self._kept:
            return
        if self._keep:
            if self._active - len(self._parked) <= 0:
                self._kept = True
                plan.kept = True
            return
        if self._active == 0:
            note = (
                f"interrupted: {self._stop_reason}"
                if self._stop_reason is not None
                else self._abort_reason
            )
            assert note is not None
            self._end(note, plan)

    @property
    def has_admitted(self) -> bool:
        return bool(self._admitted.changes)

    def take_admitted(self) -> Plan:
        """What ``Admission.admit`` started for this run since the last call."""
        plan, self._admitted = self._admitted, Plan()
        plan.wake_at = self._retry_heap[0][0] if self._retry_heap else None
        return plan

    def tick(self, now: float) -> Plan:
        """Nothing happened, but time passed: release retries that are due."""
        return self.handle((), now)

    def abandon(self) -> None:
        """Let the run go without settling it (another scheduler took it over, ADR
        0041): the slots and limits its queued and running task instances hold are
        released, and it leaves the cross-run admission. Its states stay as they are;
        the planner is not used again."""
        self._held = True
        for task_id, tis in self._tis.items():
            spec = self._specs[task_id]
            for ti in tis.values():
                if ti.state not in ACTIVE:
                    continue
                self._active -= 1
                self._limit.used -= 1
                if task_id in self._task_limits:
                    self._task_limits[task_id].used -= 1
                self._pools.release(spec.pool, spec.pool_slots)
                if spec.executor:
                    self._admission.release_executor(spec.executor)
        self._admission.unregister(self)

    def hold(self) -> None:
        """Start nothing more (shutdown has begun); events are still processed."""
        self._held = True

    def unhold(self) -> None:
        """Start tasks again after ``hold`` (the service got its lock back) -- unless
        a stop or an abort began."""
        if not self.ending:
            self._held = False

    def abort(self, reason: str) -> Plan:
        """Give up on the run (shutdown). The run fails; nothing more is started.

        Queued and running task instances must have been reported (failed) by the
        caller first. Scheduled ones and ones waiting for a retry fail with ``reason``;
        ones whose dependencies were never met stay ``none``: they never ran.
        """
        plan = Plan()
        self._stimulus = _tick_id("abort")
        self._end(reason, plan)
        return plan

    def _end(self, reason: str, plan: Plan) -> None:
        self._aborted = True
        for tis in self._tis.values():
            for ti in list(tis.values()):
                if ti.state in (TaskState.SCHEDULED, TaskState.UP_FOR_RETRY):
                    self._set(ti, TaskState.FAILED, plan, reason=reason)
        self._drain(plan)
        for heap in self._ready.values():
            heap.clear()
        self._capped.clear()
        self._retry_heap.clear()
        if self._state is None:
            self._state = DagRunState.FAILED
            plan.run_state = self._state
        self._admission.unregister(self)

    # -- internals ------------------------------------------------------------------

    def _ti(self, key: TIKey) -> _TI:
        try:
            return self._tis[key.task_id][key.map_index]
        except KeyError:
            raise PlanningError(f"event for unknown task instance {key}") from None

    def _apply(self, event: Event, now: float, plan: Plan) -> None:
        key = event.key
        try:
            ti = self._tis[key.task_id][key.map_index]
        except KeyError:
            raise PlanningError(f"event for unknown task instance {key}") from None
        if isinstance(event, Started):
            self._set(ti, TaskState.RUNNING, plan)
        elif isinstance(event, Succeeded):
            if ti.key.map_index == UNMAPPED:
                self._output_lengths[ti.key.task_id] = event.output_length
            self._set(ti, TaskState.SUCCESS, plan)
            if event.skip_downstream:
                self._skip_downstream(ti.key.task_id, event.skip_downstream, plan)
        elif isinstance(event, Skipped):
            self._set(ti, TaskState.SKIPPED, plan, reason=event.reason or None)
        elif isinstance(event, Failed):
            if self._keep and event.outcome is Outcome.INTERRUPTED:
                # Cancelled by a keeping stop: it stays queued/running (in the store
                # too) and is resumed or retried at the next start.
                self._parked.add(ti.key)
                return
            policy = self._specs[ti.key.task_id].retry
            if event.retryable and ti.try_number < policy.max_tries:
                at = now + policy.next_delay(ti.try_number, self._rng)
                self._set(ti, TaskState.UP_FOR_RETRY, plan, reason=event.reason, retry_at=at)
                heapq.heappush(self._retry_heap, (at, self._next_seq(), ti.key))
            else:
                self._set(ti, TaskState.FAILED, plan, reason=event.reason)
                self._maybe_stop_fast(ti.key, plan)
        else:  # pragma: no cover - exhaustive
            raise PlanningError(f"unknown event {event!r}")

    def _skip_downstream(self, task_id: str, skip: Iterable[str], plan: Plan) -> None:
        """A finished task's decision (branch, short circuit): skip the instances of
        ``skip`` not decided yet (the worker names tasks downstream of it)."""
        for down in skip:
            if down not in self._specs:
                continue  # the DAG file changed under the run: not a task of this run
            for ti in list(self._tis[down].values()):
                if ti.state is TaskState.NONE:
                    self._set(ti, TaskState.SKIPPED, plan, reason=skip_reason(task_id))

    def _maybe_stop_fast(self, failed: TIKey, plan: Plan) -> None:
        """A task failed for good: stop the run if it is fail_fast. A teardown that
        does not fail the run (no on_failure_fail_dagrun) does not stop it either."""
        if not self._fail_fast or self._fail_fast_reason is not None or self.ending:
            return
        spec = self._specs[failed.task_id]
        if spec.is_teardown and not spec.on_failure_fail_dagrun:
            return
        self._stop_fast(failed, plan)

    def _stop_fast(self, failed: TIKey, plan: Plan) -> None:
        """fail_fast (Airflow's): a task failed, so every other task that is not a
        teardown stops -- running ones are cancelled (they fail, interrupted), ones not
        started are skipped -- and the run fails. Teardowns run as their rule says."""
        reason = fail_fast_reason(str(failed))
        self._fail_fast_reason = reason
        for task_id, tis in self._tis.items():
            if self._specs[task_id].is_teardown:
                continue
            for ti in list(tis.values()):
                if ti.state in ACTIVE:
                    plan.to_cancel.append(ti.key)
                elif ti.state in (TaskState.NONE, TaskState.SCHEDULED, TaskState.UP_FOR_RETRY):
                    self._set(ti, TaskState.SKIPPED, plan, reason=reason)
        for heap in self._ready.values():
            heap[:] = [e for e in heap if self._ti(e[2]).state is TaskState.SCHEDULED]
            heapq.heapify(heap)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _set(
        self,
        ti: _TI,
        new: TaskState,
        plan: Plan,
        *,
        reason: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        # The hot path (four calls per task instance): each look-up is done once, and
        # a task with no downstream, limit or executor does nothing it does not need.
        old = ti.state
        if new not in TRANSITIONS[old]:
            self._impossible(ti, new)
        key = ti.key
        task_id = key.task_id
        if old in ACTIVE and new not in ACTIVE:
            self._release(task_id)
        if new is TaskState.QUEUED:
            if ti.keep_try:
                ti.keep_try = False
            else:
                ti.try_number += 1
        ti.state = new
        ti.next_retry_at = retry_at
        counts = self._counts[task_id]
        counts[old] -= 1
        counts[new] += 1
        total = self._total
        total[old] -= 1
        total[new] += 1
        terminal = new in TERMINAL
        if task_id in self._fanning:
            if task_id in self._plain_down:
                up_counts = self._up_counts
                for down in self._downstream[task_id]:
                    up = up_counts[down]
                    up[old] -= 1
                    up[new] += 1
                    if terminal:
                        self._queue_evaluation(down)
            else:
                self._set_downstream(key, self._specs[task_id].is_setup, old, new, terminal)
        stimulus = self._stimulus
        self._history.append((key, old, new, stimulus))
        plan.changes.append(Change(key, old, new, ti.try_number, reason, retry_at, stimulus))
        if terminal:
            self._unfinished -= 1
            self._done[task_id] += 1
        elif new is TaskState.SCHEDULED:
            # A try resuming after a restart or an adoption (same try number) goes
            # before every new start, over all runs: its work may be running already,
            # so its slot must be its own again before anything else takes one.
            spec = self._specs[task_id]
            first = RESUME_FIRST if ti.keep_try else -spec.priority_weight
            heapq.heappush(self._ready[spec.pool], (first, self._next_ready_seq(), key))

    def _release(self, task_id: str) -> None:
        """A task instance left queued/running: its slot, limits and executor place."""
        spec = self._specs[task_id]
        self._active -= 1
        self._limit.used -= 1
        limits = self._task_limits
        if limits and task_id in limits:
            limits[task_id].used -= 1
        self._pools.release(spec.pool, spec.pool_slots)
        if spec.executor:
            self._admission.release_executor(spec.executor)

    def _set_downstream(
        self, key: TIKey, is_setup: bool, old: TaskState, new: TaskState, terminal: bool
    ) -> None:
        """``_set`` for a setup task or one upstream of per-index tasks: its downstream
        tasks' counters (setup and per-index ones too) after ``old`` -> ``new``."""
        task_id = key.task_id
        for down in self._downstream[task_id]:
            up = self._up_counts[down]
            up[old] -= 1
            up[new] += 1
            if is_setup:
                setup = self._up_setup[down]
                setup[old] -= 1
                setup[new] += 1
            if down in self._ext_counts:
                self._track_per_index(key, down, old, new)
                if down in self._idx_counts and task_id in self._specs[down].per_index_upstream:
                    continue  # its same-index instance is queued instead
            if terminal:
                self._queue_evaluation(down)

    def _track_per_index(self, key: TIKey, down: str, old: TaskState, new: TaskState) -> None:
        """Keep ``down``'s per-index counters (it has per-index upstreams) after
        ``key`` went from ``old`` to ``new``; queue ``down[i]`` when ``key`` is done."""
        if key.task_id not in self._specs[down].per_index_upstream:
            ext = self._ext_counts[down]
            ext[old] -= 1
            ext[new] += 1
            return
        by_index = self._idx_counts.get(down)
        if by_index is None or key.map_index not in by_index:
            return  # not expanded yet: it is counted when it expands
        counts = by_index[key.map_index]
        counts[old] -= 1
        counts[new] += 1
        if new in TERMINAL:
            down_key = TIKey(down, key.map_index)
            if down_key not in self._pending_key_set:
                self._pending_key_set[down_key] = self._stimulus
                self._pending_keys.append(down_key)

    def _impossible(self, ti: _TI, new: TaskState) -> None:
        """A transition the table forbids: a bug. Say which report asked for it and
        what happened to the task instance before (its story)."""
        lines = [f"  {old} -> {to} ({sid or 'no id'})" for old, to, sid in self.story(ti.key)[-10:]]
        history = "\n".join(lines) or "  (no transition recorded)"
        raise InvalidTransition(
            f"task instance {ti.key}",
            ti.state,
            new,
            f"; asked by {self._stimulus or 'no id'}; its recent history:\n{history}",
        )

    def _queue_evaluation(self, task_id: str) -> None:
        if task_id not in self._pending_set:
            self._pending_set[task_id] = self._stimulus
            self._pending.append(task_id)

    def _drain(self, plan: Plan) -> None:
        caller = self._stimulus
        while self._pending or self._pending_keys:
            while self._pending:
                task_id = self._pending.popleft()
                self._stimulus = self._pending_set.pop(task_id)
                self._evaluate(task_id, plan)
            if self._pending_keys:
                key = self._pending_keys.popleft()
                self._stimulus = self._pending_key_set.pop(key)
                self._evaluate_index(key, plan)
        self._stimulus = caller

    def _evaluate(self, task_id: str, plan: Plan) -> None:
        if self._aborted:
            return
        tis = self._tis[task_id]
        spec = self._specs[task_id]
        if spec.per_index_upstream and task_id in self._idx_counts:
            for i, ti in list(tis.items()):
                if ti.state is TaskState.NONE:
                    self._evaluate_index(TIKey(task_id, i), plan)
            return
        placeholder = tis.get(UNMAPPED)
        if placeholder is None or placeholder.state is not TaskState.NONE:
            return  # already decided (or expanded)
        if spec.per_index_upstream:
            expandable = self._per_index_expandable(spec)
            if expandable is not None:
                if expandable and self._sources_done(spec):
                    self._expand(spec, plan)
                return
        # No upstream task instance (a root): every trigger rule says ready.
        verdict = self._verdict(task_id) if self._up_total[task_id] else Verdict.READY
        if verdict is Verdict.WAIT:
            return
        if verdict is Verdict.READY and spec.is_mapped and not self._sources_done(spec):
            return  # the count is not known until every instance of the source is done
        if verdict is Verdict.SKIP:
            self._set(placeholder, TaskState.SKIPPED, plan, reason="skipped by trigger rule")
        elif verdict is Verdict.UPSTREAM_FAILED:
            self._set(
                placeholder, TaskState.UPSTREAM_FAILED, plan, reason="an upstream task failed"
            )
        elif not spec.is_mapped:
            self._schedule(placeholder, plan)
        else:
            self._expand(spec, plan)

    def _per_index_expandable(self, spec: TaskSpec) -> bool | None:
        """For a task with per-index upstreams: None when one of them ended without
        expanding (then the task is planned like any mapped task, over every
        upstream), else whether it can expand now (every per-index upstream expanded,
        every other upstream done)."""
        for up in spec.per_index_upstream:
            placeholder = self._tis[up].get(UNMAPPED)
            if placeholder is not None:
                return None if placeholder.state in TERMINAL else False
        ext = self._ext_counts[spec.task_id]
        return sum(ext[s] for s in TERMINAL) == self._ext_total[spec.task_id]

    def _evaluate_index(self, key: TIKey, plan: Plan) -> None:
        """Instance ``key`` of a task with per-index upstreams: its trigger rule over
        its other upstreams and the same-index instances of its per-index ones."""
        ti = self._tis[key.task_id].get(key.map_index)
        if self._aborted or ti is None or ti.state is not TaskState.NONE:
            return
        task_id = key.task_id
        mine = self._idx_counts[task_id][key.map_index]
        verdict = evaluate(
            self._specs[task_id].trigger_rule,
            self._ext_counts[task_id] + mine,
            self._ext_total[task_id] + sum(mine.values()),
            self._up_setup.get(task_id),
            self._up_setup_total.get(task_id, 0),
        )
        if verdict is Verdict.READY:
            self._schedule(ti, plan)
        elif verdict is Verdict.SKIP:
            self._set(ti, TaskState.SKIPPED, plan, reason="skipped by trigger rule")
        elif verdict is Verdict.UPSTREAM_FAILED:
            self._set(ti, TaskState.UPSTREAM_FAILED, plan, reason="an upstream task failed")

    def _index_counts(self, spec: TaskSpec, index: int) -> Counter[TaskState]:
        """The states of the same-index instances of ``spec``'s per-index upstreams."""
        counts: Counter[TaskState] = Counter()
        for up in spec.per_index_upstream:
            ti = self._tis[up].get(index)
            if ti is not None:
                counts[ti.state] += 1
        return counts

    def _verdict(self, task_id: str) -> Verdict:
        rule = self._specs[task_id].trigger_rule
        setup = self._up_setup.get(task_id)
        if setup is None:  # no upstream setup (most tasks): the plain counters only
            return evaluate(rule, self._up_counts[task_id], self._up_total[task_id])
        return evaluate(
            rule,
            self._up_counts[task_id],
            self._up_total[task_id],
            setup,
            self._up_setup_total[task_id],
        )

    def _schedule(self, ti: _TI, plan: Plan) -> None:
        """Ready to run: scheduled, unless its depends_on_past gate is not met yet
        (then it stays ``none``, held, and the plan asks about it: ``Plan.gated``)."""
        if ti.key.task_id in self._past_gated and ti.key not in self._gate_open:
            if ti.key not in self._gated:
                self._gated.add(ti.key)
                plan.gated.append(ti.key)
            return
        self._set(ti, TaskState.SCHEDULED, plan)

    def _open_gate(self, key: TIKey, plan: Plan) -> None:
        """``PastGateMet``: schedule the held instance (if the run still starts things)."""
        self._gate_open.add(key)
        if key not in self._gated:
            return
        if self._aborted or self.ending or self._state is not None:
            return  # it stays held (never reached), as the run ends
        self._gated.discard(key)
        self._schedule(self._ti(key), plan)

    def _sources_done(self, spec: TaskSpec) -> bool:
        return all(
            self._done[source] == len(self._tis[source])
            for src in spec.map_sources
            for source in src.upstreams
        )

    def _map_length(self, spec: TaskSpec, src: MapSource) -> int | str:
        """The length of one expand() argument, or why it cannot be known."""
        if src.literal_length is not None:
            return src.literal_length
        lengths: list[int] = []
        for source in src.upstreams:
            length = self._source_length(spec, src, source)
            if isinstance(length, str):
                return length
            lengths.append(length)
        return max(lengths) if src.zip_longest else min(lengths)

    def _source_length(self, spec: TaskSpec, src: MapSource, source: str) -> int | str:
        if self._specs[source].is_mapped:
            # Mapping over a mapped task's outputs: one element per successful instance.
            return self._counts[source][TaskState.SUCCESS]
        if self._tis[source][UNMAPPED].state is not TaskState.SUCCESS:
            return f"upstream task {source!r} did not succeed, so it has no output to map over"
        length = self._output_lengths.get(source)
        if length is None:
            return (
                f"cannot map {spec.task_id!r} over the output of {source!r} "
                f"(argument {src.name!r}): it did not return a list, tuple or dict"
            )
        return length

    def _expand(self, spec: TaskSpec, plan: Plan) -> None:
        tis = self._tis[spec.task_id]
        placeholder = tis[UNMAPPED]
        lengths: list[int] = []
        for src in spec.map_sources:
            length = self._map_length(spec, src)
            if isinstance(length, str):
                self._set(placeholder, TaskState.FAILED, plan, reason=length)
                self._maybe_stop_fast(placeholder.key, plan)
                return
            lengths.append(length)
        count = math.prod(lengths)
        if count > self._max_map_length:
            self._set(
                placeholder,
                TaskState.FAILED,
                plan,
                reason=(
                    f"task {spec.task_id!r} would expand to {count:,} task instances, more "
                    f"than max_map_length ({self._max_map_length:,}); raise the setting "
                    "max_map_length or map over fewer elements"
                ),
            )
            return
        if count == 0:
            self._set(placeholder, TaskState.SKIPPED, plan, reason="mapped over an empty list")
            return
        plan.expansions.append(Expansion(spec.task_id, count))
        # The placeholder disappears without a trace in the counters: it was never a
        # real task instance, and downstream totals must count the expanded ones.
        del tis[UNMAPPED]
        counts = self._counts[spec.task_id]
        counts[TaskState.NONE] -= 1
        self._total[TaskState.NONE] += count - 1
        self._unfinished += count - 1
        for down in self._downstream[spec.task_id]:
            self._up_counts[down][TaskState.NONE] += count - 1
            self._up_total[down] += count - 1
            if down in self._ext_counts:
                if spec.task_id in self._specs[down].per_index_upstream:
                    self._queue_evaluation(down)
                else:
                    self._ext_counts[down][TaskState.NONE] += count - 1
                    self._ext_total[down] += count - 1
            if spec.is_setup:
                self._up_setup[down][TaskState.NONE] += count - 1
                self._up_setup_total[down] += count - 1
        per_index = bool(spec.per_index_upstream)
        if per_index:
            self._idx_counts[spec.task_id] = {}
        for i in range(count):
            ti = _TI(TIKey(spec.task_id, i))
            tis[i] = ti
            counts[TaskState.NONE] += 1
            if per_index:
                self._idx_counts[spec.task_id][i] = self._index_counts(spec, i)
                self._evaluate_index(ti.key, plan)
            else:
                self._schedule(ti, plan)

    def _release_retries(self, now: float, plan: Plan) -> None:
        heap = self._retry_heap
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            ti = self._ti(key)
            if ti.state is TaskState.UP_FOR_RETRY:
                self._set(ti, TaskState.SCHEDULED, plan)

    def admissible_head(self) -> tuple[int, int] | None:
        """(-priority, ready order) of the best ready task instance that fits now --
        its pool's free slots, its DAG's max_active_tasks, its executor's capacity --
        or None. ``admit_head`` then starts it."""
        self._head_pool = None
        limit = self._limit
        if self._aborted or self._held or limit.limit - limit.used <= 0:
            return None
        if self._capped:
            self._uncap()
        pools, admission, specs, limited = self._pools, self._admission, self._specs, self._limited
        best: tuple[int, int] | None = None
        for pool, heap in self._ready.items():
            while (
                heap and limited and heap[0][2].task_id in limited and self._task_full(heap[0][2])
            ):
                entry = heapq.heappop(heap)
                self._capped.setdefault(entry[2].task_id, []).append(entry)
            if not heap:
                continue
            prio, seq, key = heap[0]
            spec = specs[key.task_id]
            if pools.free(pool) < spec.pool_slots:
                continue
            if spec.executor and not admission.executor_free(spec.executor):
                continue
            if best is None or (prio, seq) < best:
                best, self._head_pool = (prio, seq), pool
        return best

    def admit_head(self, plan: Plan | None = None) -> None:
        """Start the task instance ``admissible_head`` chose (into ``plan``, or into
        what ``take_admitted`` returns)."""
        pool = self._head_pool
        assert pool is not None, "admit_head without an admissible head"
        self._head_pool = None
        _, _, key = heapq.heappop(self._ready[pool])
        task_id = key.task_id
        ti = self._tis[task_id][key.map_index]
        spec = self._specs[task_id]
        self._pools.acquire(spec.pool, spec.pool_slots)
        if spec.executor:
            self._admission.take_executor(spec.executor)
        self._active += 1
        self._limit.used += 1
        limits = self._task_limits
        if limits and task_id in limits:
            limits[task_id].used += 1
        target = self._admitted if plan is None else plan
        self._set(ti, TaskState.QUEUED, target)
        target.to_start.append(key)

    def _task_full(self, key: TIKey) -> bool:
        """The task is at its max_active_tis_per_dag or max_active_tis_per_dagrun."""
        limit = self._task_limits.get(key.task_id)
        if limit is not None and limit.free() <= 0:
            return True
        cap = self._specs[key.task_id].max_active_tis_per_dagrun
        if cap is None:
            return False
        counts = self._counts[key.task_id]
        return counts[TaskState.QUEUED] + counts[TaskState.RUNNING] >= cap

    def _uncap(self) -> None:
        """Put the set-aside instances of tasks with room again back in their pools'
        heaps (with their first priority and order)."""
        for task_id in list(self._capped):
            entries = self._capped[task_id]
            if self._task_full(entries[0][2]):
                continue
            del self._capped[task_id]
            heap = self._ready[self._specs[task_id].pool]
            for entry in entries:
                heapq.heappush(heap, entry)

    def _admit(self, plan: Plan) -> None:
        """Move ready task instances to QUEUED by priority, within every limit."""
        while self.admissible_head() is not None:
            self.admit_head(plan)

    def _finish_plan(self, plan: Plan, now: float, *, admit: bool = True) -> None:
        self._drain(plan)
        if self.ending:
            self._settle_ending(plan)
        self._release_retries(now, plan)
        if admit:
            self._admit(plan)
        plan.wake_at = self._retry_heap[0][0] if self._retry_heap else None
        if self._unfinished == 0 and self._state is None:
            self._state = self._final_state()
            plan.run_state = self._state
            self._admission.unregister(self)
        if self.checking:
            # Amortized: a big run is checked every few plans (and when it ends), so a
            # test driving 10,000 task instances one event at a time stays linear.
            self._unchecked += 1
            if self._unchecked * 16 >= self._total.total() or self._state is not None:
                self._unchecked = 0
                self.validate()

    def _final_state(self) -> DagRunState:
        # As in Airflow, the leaves decide: a failure handled by a downstream
        # one_failed/all_done task does not fail the run; teardowns do not count
        # unless on_failure_fail_dagrun. A fail_fast stop fails the run.
        if self._fail_fast_reason is not None:
            return DagRunState.FAILED
        total = self._total
        if not any(total[s] for s in FAILED_LIKE):
            return DagRunState.SUCCESS  # nothing failed at all: no leaf to look at
        for leaf in self._leaves:
            counts = self._counts[leaf]
            if any(counts[s] for s in FAILED_LIKE):
                return DagRunState.FAILED
        return DagRunState.SUCCESS
