"""Pool slots: a ledger shared by every DAG run the scheduler drives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

DEFAULT_POOL = "default_pool"


class PoolUse(NamedTuple):
    """One pool as one engine uses it: slots its running and queued task instances
    hold, and slots its ready task instances wait for (what it reports to share a pool
    with other schedulers, ADR 0041)."""

    in_use: int
    waiting: int


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
        #: Several schedulers (ADR 0041): this scheduler's share of each pool, what
        #: admission fills instead of the pool's size; None with one scheduler.
        self._shares: dict[str, int] | None = None
        #: Pools deleted while the ledger lived: kept at size 0 (a run planned before
        #: may still hold or wait for their slots), unknown to new runs.
        self._deleted: set[str] = set()

    def resize(self, capacity: Mapping[str, int], shares: Mapping[str, int] | None = None) -> None:
        """Take the pools' sizes as they are now (the ``slot_pool`` table, read on each
        heartbeat). Slots in use stay taken: a pool shrunk below its use admits nothing
        until enough are released. A pool gone is kept at size 0 for the runs that
        use it already; new runs are told it does not exist.

        ``shares`` (several schedulers, ADR 0041): the slots of each pool this engine
        may fill, at most its size; a pool left out of it gets none. The sizes still
        decide which tasks could ever run (``check``): a task waits for a share, it is
        not refused for the lack of one. None: the whole pool (one scheduler)."""
        for name, slots in capacity.items():
            if slots < 0:
                raise PoolError(f"pool {name!r} has a negative size ({slots})")
        if shares is not None:
            for name, slots in shares.items():
                if slots < 0:
                    raise PoolError(f"pool {name!r} has a negative share ({slots})")
            self._shares = dict(shares)
        else:
            self._shares = None
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
        limit = self._capacity[pool]
        if self._shares is not None:
            limit = min(limit, self._shares.get(pool, 0))
        return limit - self._used[pool]

    def acquire(self, pool: str, slots: int) -> None:
        if self.free(pool) < slots:
            raise RuntimeError(
                f"pool {pool!r} over-committed: {slots} asked, {self.free(pool)} free"
            )
        self._used[pool] += slots

    def hold(self, pool: str, slots: int) -> None:
        """Count slots already taken outside this ledger's say -- a task instance
        restored as running -- even past the pool's size or share: it runs whatever
        the ledger says, and nothing more is admitted until enough are released."""
        self._used[pool] = self._used.get(pool, 0) + slots

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
    def shares(self) -> dict[str, int] | None:
        """This engine's share of each pool (several schedulers), or None (all of it)."""
        return None if self._shares is None else dict(self._shares)

    @property
    def sizes(self) -> dict[str, int]:
        """The pools that exist now and their sizes (deleted ones left out)."""
        return {p: n for p, n in self._capacity.items() if p not in self._deleted}
