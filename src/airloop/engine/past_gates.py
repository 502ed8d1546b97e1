"""depends_on_past gates: is the previous run's instance of a task done well enough?

The planner holds a task instance whose task has ``depends_on_past`` (or
``wait_for_downstream``) at ``none`` and asks about it (``Plan.gated``); this module
answers from the store, as Airflow's "previous dag run" dependency does:

- the previous run is the DAG's run with the latest logical date before this one's;
- no previous run: met (the DAG's first run);
- the previous run has the same task instance (same map index): met once it is
  ``success`` or ``skipped``; with ``wait_for_downstream`` also once every instance of
  its direct downstream tasks in that run is ``success`` or ``skipped``;
- it has no such instance: with ``ignore_first_depends_on_past`` and no earlier run
  having the task at all, met (the task's first instance); a mapped task whose
  previous run expanded to fewer instances: met for the extra map indexes (nothing
  to wait for); otherwise not met ("has not run yet"), as in Airflow.

Checks run at the start of a scheduler tick, off the loop through the store's async
API, and their answers (``PastGateMet``) are that tick's stimuli. A held run is
checked again when a run of the same DAG settles a task instance in this engine
(event-driven), and every ``recheck_interval`` seconds while its previous run is not
driven by this engine (another process may finish it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from airloop.core.outcomes import new_stimulus_id
from airloop.core.specs import UNMAPPED, TIKey
from airloop.core.states import TaskState
from airloop.core.stimuli import PastGateMet, Stimulus
from airloop.engine.active_run import ActiveRun
from airloop.exceptions import DatabaseError
from airloop.executors.runner import first_line
from airloop.store.runs import Store

log = logging.getLogger(__name__)

_DONE_WELL = frozenset({TaskState.SUCCESS, TaskState.SKIPPED})


@dataclass(slots=True)
class _Held:
    run: ActiveRun
    keys: set[TIKey] = field(default_factory=set)
    #: Check at the next tick (new keys, or a run of the DAG settled something).
    check: bool = True
    #: The previous run found by the last check (None: none, or not checked yet).
    previous_pk: int | None = None


class PastGates:
    """The held task instances of every run the scheduler drives, and their checks."""

    def __init__(self, store: Store, recheck_interval: float) -> None:
        self._store = store
        self._interval = recheck_interval
        self._held: dict[int, _Held] = {}
        self._recheck_at: float | None = None

    @property
    def wake_at(self) -> float | None:
        """When held gates are checked again without news (loop time), if ever."""
        return self._recheck_at if self._held else None

    def due(self, now: float) -> bool:
        if any(h.check for h in self._held.values()):
            return True
        return self._recheck_at is not None and now >= self._recheck_at and bool(self._held)

    def hold(self, run: ActiveRun, keys: list[TIKey]) -> None:
        held = self._held.setdefault(run.run_pk, _Held(run))
        held.keys.update(keys)
        held.check = True

    def settled(self, dag_id: str) -> None:
        """A run of ``dag_id`` settled a task instance (or ended): check its held runs."""
        for held in self._held.values():
            if held.run.info.dag_id == dag_id:
                held.check = True

    def forget(self, run_pk: int) -> None:
        self._held.pop(run_pk, None)

    async def check(self, now: float, active: set[int]) -> dict[int, list[Stimulus]]:
        """Check what is due; return each run's ``PastGateMet`` stimuli. A run whose
        previous run is not in ``active`` (driven by this engine) is checked again
        after the recheck interval."""
        due = self._recheck_at is not None and now >= self._recheck_at
        met_by_run: dict[int, list[Stimulus]] = {}
        external = False
        for run_pk, held in list(self._held.items()):
            run = held.run
            if run.finished or run.kept:
                del self._held[run_pk]
                continue
            if held.check or due:
                held.check = False
                try:
                    met = await self._check_run(held)
                except DatabaseError as exc:
                    # Held a little longer: checked again after the re-check interval.
                    log.warning(
                        "%s: cannot check depends_on_past gates (%s); trying again in %gs",
                        run.label,
                        first_line(exc),
                        self._interval,
                    )
                    held.previous_pk = None
                    external = True
                    continue
                if met:
                    held.keys.difference_update(met)
                    sid = new_stimulus_id("past-gate")
                    met_by_run[run_pk] = [PastGateMet(key, sid) for key in met]
                if not held.keys:
                    del self._held[run_pk]
                    continue
            if held.previous_pk not in active:
                external = True
        if not external:
            self._recheck_at = None
        elif due or self._recheck_at is None:
            self._recheck_at = now + self._interval
        return met_by_run

    async def _check_run(self, held: _Held) -> list[TIKey]:
        run, store = held.run, self._store
        info = run.info
        if info.logical_date is None:
            # No logical date: no previous run by logical date to wait for (documented).
            held.previous_pk = None
            return sorted(held.keys, key=str)
        previous = await store.previous_run(info.dag_id, info.logical_date)
        if previous is None:
            held.previous_pk = None
            return sorted(held.keys, key=str)
        held.previous_pk = previous.id
        logical_date = info.logical_date
        tasks = run.dag.task_dict
        wanted = {key.task_id for key in held.keys}
        for task_id in list(wanted):
            if tasks[task_id].settings.wait_for_downstream:
                wanted |= tasks[task_id].downstream_task_ids
        rows: dict[str, dict[int, TaskState]] = {}
        for task_id, map_index, state in await store.task_states(previous.id, sorted(wanted)):
            rows.setdefault(task_id, {})[map_index] = state
        met: list[TIKey] = []
        first_ever: dict[str, bool] = {}
        for key in sorted(held.keys, key=str):
            settings = tasks[key.task_id].settings
            mine = rows.get(key.task_id, {})
            reason: str | None
            if not mine:
                if settings.ignore_first_depends_on_past:
                    if key.task_id not in first_ever:
                        first_ever[key.task_id] = not await store.ran_before(
                            info.dag_id, key.task_id, logical_date
                        )
                    reason = None if first_ever[key.task_id] else _not_run(key, previous.run_id)
                else:
                    reason = _not_run(key, previous.run_id)
            else:
                reason = _instance_reason(key, mine, previous.run_id)
            if reason is None and settings.wait_for_downstream:
                reason = _downstream_reason(
                    key, tasks[key.task_id].downstream_task_ids, rows, previous.run_id
                )
            if reason is None:
                met.append(key)
            else:
                run.note_waiting(key, reason)
        return met


def _not_run(key: TIKey, run_id: str) -> str:
    return (
        f"waiting: depends_on_past is true for this task, but the previous run "
        f"{run_id!r} has no instance of it (it has not run yet)"
    )


def _instance_reason(key: TIKey, mine: dict[int, TaskState], run_id: str) -> str | None:
    """Why the previous run's instance (same map index) does not meet the gate."""
    if key.map_index in mine:
        state = mine[key.map_index]
        label = str(key)
    elif UNMAPPED in mine:
        # Mapped there but not expanded yet (or this run's task is unmapped).
        state, label = mine[UNMAPPED], key.task_id
    elif key.map_index == UNMAPPED:
        # Unmapped here, mapped there: every instance counts.
        bad = {i: s for i, s in mine.items() if s not in _DONE_WELL}
        if not bad:
            return None
        i, state = min(bad.items())
        label = str(TIKey(key.task_id, i))
    else:
        return None  # expanded to fewer instances there: nothing to wait for
    if state in _DONE_WELL:
        return None
    return (
        f"waiting: depends_on_past is true for this task, but its instance {label} "
        f"in the previous run {run_id!r} is {state}"
    )


def _downstream_reason(
    key: TIKey, downstream: set[str], rows: dict[str, dict[int, TaskState]], run_id: str
) -> str | None:
    for task_id in sorted(downstream):
        for index, state in sorted(rows.get(task_id, {}).items()):
            if state not in _DONE_WELL:
                label = str(TIKey(task_id, index))
                return (
                    f"waiting: wait_for_downstream is true for this task, but {label}, "
                    f"downstream of it in the previous run {run_id!r}, is {state}"
                )
    return None
