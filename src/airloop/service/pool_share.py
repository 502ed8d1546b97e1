"""Pools shared by several schedulers (ADR 0041): the glue between the engine's
admission and the ``pool_quota`` table, called by the scheduler service at each lease
renewal and, when a pool runs short, early.

``PoolSharer.share`` reports what the engine uses and waits for, takes this
scheduler's share of every pool (``airloop.store.pool_quotas``) and makes it the
engine's admission limit: lowered before the commit, raised after it, so this
scheduler never fills a share the database no longer gives it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from airloop.core.pools import PoolUse
from airloop.engine.engine import Engine
from airloop.store.pool_quotas import PoolShares, release_pools, share_pools

log = logging.getLogger(__name__)

#: ``needs_more`` says no within this long of the last call: a burst of task
#: instances becoming ready one tick at a time asks once, not once per tick.
ASK_GAP = 0.25


@dataclass(frozen=True, slots=True)
class _Asked:
    want: int
    grant: int


class PoolSharer:
    """This scheduler's shares of the pools (one per scheduler service, HA mode).
    Created, it closes the engine's pools (share 0 each) until ``share`` runs."""

    def __init__(self, engine: Engine, scheduler_id: int, *, ask_gap: float = ASK_GAP) -> None:
        self.engine = engine
        self.scheduler_id = scheduler_id
        self.ask_gap = ask_gap
        self._asked: dict[str, _Asked] = {}
        self._last_call: float | None = None
        self.last: PoolShares | None = None
        # One call at a time: a renewal and an early ask overlapping could apply an
        # older decision after a newer one.
        self._calling = asyncio.Lock()
        # Nothing is admitted from any pool until the first ``share`` says how much
        # of it is this scheduler's (runs resumed before it wait for it).
        engine.resize_pools(engine.pools, {})

    async def share(self) -> PoolShares:
        """One rebalance: report, take the shares, apply them. Database errors
        propagate (TransientDatabaseError: nothing changed, the engine keeps its
        current shares, which are never more than the database gives it)."""
        async with self._calling:
            return await self._share()

    async def _share(self) -> PoolShares:
        engine = self.engine
        self._last_call = time.monotonic()

        def lower_first(decided: PoolShares) -> None:
            before = engine.pool_shares
            grants = decided.grants
            if before is not None:
                grants = {p: min(n, before.get(p, 0)) for p, n in grants.items()}
            engine.resize_pools(decided.sizes, grants)

        result = await share_pools(
            engine.store, self.scheduler_id, engine.pool_usage, apply=lower_first
        )
        engine.resize_pools(result.sizes, result.grants)
        if not result.live:
            log.warning(
                "scheduler %d is not live in the registry (expired or stopped): "
                "it holds no pool slots",
                self.scheduler_id,
            )
        self._asked = {
            pool: _Asked(_want(result.usage.get(pool)), share.grant)
            for pool, share in result.shares.items()
        }
        self.last = result
        return result

    def needs_more(self) -> bool:
        """Worth calling ``share`` before the next renewal: a pool's next ready task
        instance does not fit, and the last call granted all this scheduler asked
        for then (so the database may have more; when it granted less, the others
        yield at their renewals and the next renewal takes it). Cheap: no I/O."""
        if self._last_call is not None and time.monotonic() - self._last_call < self.ask_gap:
            return False
        for pool in self.engine.short_pools():
            if self.last is not None and pool not in self.last.sizes:
                continue  # deleted: no share to ask for (its runs wait, as before)
            asked = self._asked.get(pool)
            if asked is None or asked.grant >= asked.want:
                return True
        return False

    async def release(self) -> int:
        """Give every share back (graceful stop, after the drain); the engine admits
        nothing more from the pools."""
        async with self._calling:
            self.engine.resize_pools(self.engine.pools, {})
            released = await release_pools(self.engine.store, self.scheduler_id)
            self._asked = {}
            return released


def _want(use: PoolUse | None) -> int:
    return 0 if use is None else use.in_use + use.waiting


__all__ = ["ASK_GAP", "PoolSharer"]
