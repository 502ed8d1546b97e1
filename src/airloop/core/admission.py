"""Cross-run admission: which ready task instances may start now, over all runs.

One ``Admission`` per engine owns every shared limit a task instance must fit in to
start: the pools' slots, each DAG's ``max_active_tasks`` (over all its runs), each
task's ``max_active_tis_per_dag`` (over all the DAG's runs) and each executor's
capacity. Planners keep their ready task instances; ``admit`` takes them
in one priority order across every run (priority weight, then the order they became
ready), so a run registered later is not starved by dict order, and a lowered
``max_active_tasks`` holds for old and new runs alike (the DAG keeps ONE counter).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count
from typing import TYPE_CHECKING

from airloop.core.pools import PoolLedger, PoolUse

if TYPE_CHECKING:
    from airloop.core.planner import RunPlanner


class ActiveLimit:
    """A DAG's ``max_active_tasks`` (or a task's ``max_active_tis_per_dag``), shared by
    all its runs driven by one engine."""

    def __init__(self, limit: int, name: str = "max_active_tasks") -> None:
        if limit < 1:
            raise ValueError(f"{name} must be >= 1, got {limit}")
        self.limit = limit
        self.name = name
        self.used = 0

    def free(self) -> int:
        return self.limit - self.used


class Admission:
    """Pools, per-DAG active limits and executor capacity, shared by the planners."""

    def __init__(
        self,
        pools: PoolLedger | Mapping[str, int],
        executor_capacity: Mapping[str, int | None] | None = None,
    ) -> None:
        self.pools = pools if isinstance(pools, PoolLedger) else PoolLedger(pools)
        self._limits: dict[str, ActiveLimit] = {}
        self._task_limits: dict[tuple[str, str], ActiveLimit] = {}
        self._capacity: dict[str, int] = {}
        self._executor_used: dict[str, int] = {}
        for name, capacity in (executor_capacity or {}).items():
            self.set_capacity(name, capacity)
        self._planners: dict[int, RunPlanner] = {}
        self._seq = count()

    # -- limits ---------------------------------------------------------------------

    def dag_limit(self, dag_id: str, limit: int) -> ActiveLimit:
        """The DAG's one limit; a changed ``max_active_tasks`` changes it in place, so
        what its runs already hold still counts against the new value."""
        current = self._limits.get(dag_id)
        if current is None:
            current = self._limits[dag_id] = ActiveLimit(limit)
        elif current.limit != limit:
            if limit < 1:
                raise ValueError(f"max_active_tasks must be >= 1, got {limit}")
            current.limit = limit
        return current

    def task_limit(self, dag_id: str, task_id: str, limit: int) -> ActiveLimit:
        """The task's one ``max_active_tis_per_dag`` counter over all the DAG's runs
        (changed in place like ``dag_limit``)."""
        current = self._task_limits.get((dag_id, task_id))
        if current is None:
            current = ActiveLimit(limit, f"max_active_tis_per_dag of task {task_id!r}")
            self._task_limits[(dag_id, task_id)] = current
        elif current.limit != limit:
            if limit < 1:
                raise ValueError(f"{current.name} must be >= 1, got {limit}")
            current.limit = limit
        return current

    def set_capacity(self, executor: str, capacity: int | None) -> None:
        """How many task instances ``executor`` runs at once (None: unbounded)."""
        if capacity is None:
            self._capacity.pop(executor, None)
        else:
            self._capacity[executor] = capacity
        self._executor_used.setdefault(executor, 0)

    def executor_free(self, executor: str) -> bool:
        capacity = self._capacity.get(executor)
        return capacity is None or self._executor_used.get(executor, 0) < capacity

    def executor_used(self, executor: str) -> int:
        return self._executor_used.get(executor, 0)

    def take_executor(self, executor: str) -> None:
        self._executor_used[executor] = self._executor_used.get(executor, 0) + 1

    def release_executor(self, executor: str) -> None:
        self._executor_used[executor] -= 1

    def next_seq(self) -> int:
        """Order of becoming ready, across every run (ties of priority go first-come)."""
        return next(self._seq)

    # -- the planners ----------------------------------------------------------------

    def register(self, planner: RunPlanner) -> None:
        self._planners[id(planner)] = planner

    def unregister(self, planner: RunPlanner) -> None:
        self._planners.pop(id(planner), None)

    def pool_usage(self) -> dict[str, PoolUse]:
        """Each pool (deleted ones included while used): slots held by queued and
        running task instances and by tries waiting to resume (their work may run
        already: after an adoption this can exceed the share, see
        ``airloop.core.pool_quota``), and slots new starts wait for (see
        ``RunPlanner.waiting_slots``)."""
        ledger = self.pools
        used = {pool: ledger.used(pool) for pool in ledger.pools}
        waiting = dict.fromkeys(ledger.pools, 0)
        for planner in self._planners.values():
            if planner.waiting:
                new, resuming = planner.waiting_slots()
                for pool, slots in new.items():
                    waiting[pool] = waiting.get(pool, 0) + slots
                for pool, slots in resuming.items():
                    used[pool] = used.get(pool, 0) + slots
        return {pool: PoolUse(used[pool], waiting[pool]) for pool in used}

    def short_pools(self) -> set[str]:
        """Pools whose best ready task instance (in some run) does not fit in the free
        slots: with several schedulers, worth asking for a bigger share early."""
        short: set[str] = set()
        for planner in self._planners.values():
            if planner.waiting:
                short.update(
                    p for p in self.pools.pools if p not in short and planner.pool_short(p)
                )
        return short

    def admit(self) -> None:
        """Start ready task instances of every registered run, best priority first,
        while they fit; each planner collects its admissions (``take_admitted``)."""
        planners = [p for p in self._planners.values() if p.waiting]
        while planners:
            best: RunPlanner | None = None
            best_head: tuple[int, int] | None = None
            for planner in planners:
                head = planner.admissible_head()
                if head is not None and (best_head is None or head < best_head):
                    best, best_head = planner, head
            if best is None:
                return
            best.admit_head()
