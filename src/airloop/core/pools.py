"""Pool slots: a ledger shared by every DAG run the scheduler drives."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_POOL = "default_pool"


class PoolError(ValueError):
    """A task names a pool that does not exist, or asks for more slots than it has."""


class PoolLedger:
    """Capacity and use of each pool. Pure bookkeeping; the planner acquires and releases."""

    def __init__(self, capacity: Mapping[str, int]) -> None:
        for name, slots in capacity.items():
            if slots < 0:
                raise PoolError(f"pool {name!r} has a negative size ({slots})")
        self._capacity = dict(capacity)
        self._used = dict.fromkeys(capacity, 0)
        #: Pools deleted while the ledger lived: kept at size 0 (a run planned before
        #: may still hold or wait for their slots), unknown to new runs.
        self._deleted: set[str] = set()

    def resize(self, capacity: Mapping[str, int]) -> None:
        """Take the pools' sizes as they are now (the ``slot_pool`` table, read on each
        heartbeat). Slots in use stay taken: a pool shrunk below its use admits nothing
        until enough are released. A pool gone is kept at size 0 for the runs that
        use it already; new runs are told it does not exist."""
        for name, slots in capacity.items():
            if slots < 0:
                raise PoolError(f"pool {name!r} has a negative size ({slots})")
        for name in self._capacity:
            if name not in capacity:
                self._capacity[name] = 0
                self._deleted.add(name)
        for name, slots in capacity.items():
            self._capacity[name] = slots
            self._used.setdefault(name, 0)
            self._deleted.discard(name)

    def check(self, task_id: str, pool: str, slots: int) -> None:
        if pool not in self._capacity or pool in self._deleted:
            known = ", ".join(sorted(p for p in self._capacity if p not in self._deleted))
            raise PoolError(
                f"task {task_id!r} uses pool {pool!r}, which does not exist (pools: {known})"
            )
        if slots < 1:
            raise PoolError(
                f"task {task_id!r} asks for {slots} slots of pool {pool!r}; it needs at least 1"
            )
        if slots > self._capacity[pool]:
            raise PoolError(
                f"task {task_id!r} needs {slots} slots of pool {pool!r}, "
                f"which has only {self._capacity[pool]}: it could never run"
            )

    def free(self, pool: str) -> int:
        return self._capacity[pool] - self._used[pool]

    def acquire(self, pool: str, slots: int) -> None:
        if self.free(pool) < slots:
            raise RuntimeError(
                f"pool {pool!r} over-committed: {slots} asked, {self.free(pool)} free"
            )
        self._used[pool] += slots

    def release(self, pool: str, slots: int) -> None:
        self._used[pool] -= slots
        if self._used[pool] < 0:
            raise RuntimeError(f"pool {pool!r} released more slots than were taken")

    def used(self, pool: str) -> int:
        return self._used[pool]

    @property
    def pools(self) -> Mapping[str, int]:
        """Every pool a planner may meet (deleted ones at size 0 included)."""
        return dict(self._capacity)

    @property
    def sizes(self) -> dict[str, int]:
        """The pools that exist now and their sizes (deleted ones left out)."""
        return {p: n for p, n in self._capacity.items() if p not in self._deleted}
