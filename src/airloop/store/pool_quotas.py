"""Each live scheduler's share of each pool (table ``pool_quota``, ADR 0041).

One transaction per call: it locks every ``slot_pool`` row ``FOR UPDATE`` in pool-name
order (the fixed lock order: DAG rows, then pool rows, then task instances), so the
shares of a pool only ever change one scheduler at a time; deletes the rows of
schedulers whose registry row expired (``expires_at`` before the database's now) or
says 'stopped'; then reads what this scheduler uses *at that moment* and sets its own
rows by ``airloop.core.pool_quota.decide_share``. Only a scheduler changes its own
rows: the others may be admitting by theirs. Pools absent from ``slot_pool`` get no
share (this scheduler's rows for them are deleted).

Why the usage is a callable read under the locks, and why ``apply`` runs before the
commit: a share must never be lowered in the database before this scheduler's
admission stopped filling the old one, or another scheduler could take slots this one
is still handing out. So the caller lowers its local shares (``apply``) after the
decision and before the commit makes the new shares visible; raising them waits for
the commit. Between reading the usage and ``apply`` nothing awaits, so no task
instance is admitted in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Dialect, and_, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.core.pool_quota import Quota, Share, decide_share
from airloop.core.pools import PoolUse
from airloop.store.db_clock import db_now
from airloop.store.errors import begin, connect
from airloop.store.runs import Store
from airloop.store.schema import pool_quota, scheduler_heartbeat, slot_pool


@dataclass(frozen=True, slots=True)
class PoolShares:
    """What one call decided: each pool's size (``slot_pool``) and this scheduler's
    share of it. ``live`` is False when this scheduler's own registry row had expired
    or was stopped: it then holds no share of anything (all grants 0, nothing written)."""

    sizes: dict[str, int]
    shares: dict[str, Share]
    live: bool = True
    #: Quota rows of expired or stopped schedulers deleted by this call.
    reclaimed: int = 0
    usage: dict[str, PoolUse] = field(default_factory=dict)

    @property
    def grants(self) -> dict[str, int]:
        """The slots of each pool this scheduler's admission may fill."""
        return {pool: share.grant for pool, share in self.shares.items()}


async def share_pools(
    store: Store,
    scheduler_id: int,
    usage: Callable[[], Mapping[str, PoolUse]],
    apply: Callable[[PoolShares], None] | None = None,
) -> PoolShares:
    """Set this scheduler's share of every pool from what ``usage()`` reports (called
    once, under the pools' locks); ``apply`` is called with the decision before the
    commit (see the module's text). Raises TransientDatabaseError when the database
    is unreachable or a lock wait failed: nothing changed then, call again later."""
    dialect = store.engine.dialect
    async with begin(store.engine) as conn:
        sizes = await _lock_pools(conn)
        live = await _live_schedulers(conn, dialect)
        rows = (
            await conn.execute(
                select(
                    pool_quota.c.pool,
                    pool_quota.c.scheduler_id,
                    pool_quota.c.slots,
                    pool_quota.c.in_use,
                    pool_quota.c.demand,
                )
            )
        ).all()
        used = dict(usage())
        me_live = scheduler_id in live
        shares: dict[str, Share] = {}
        for pool, size in sizes.items():
            if not me_live:
                shares[pool] = Share(slots=0, grant=0)
                continue
            mine = used.get(pool, PoolUse(0, 0))
            others = [
                Quota(int(r.slots), int(r.in_use), int(r.demand), int(r.scheduler_id))
                for r in rows
                if r.pool == pool and r.scheduler_id != scheduler_id and r.scheduler_id in live
            ]
            shares[pool] = decide_share(
                size, mine.in_use, mine.waiting, others, len(live), scheduler_id=scheduler_id
            )
        decided = PoolShares(sizes, shares, me_live, 0, used)
        if apply is not None:
            apply(decided)
        stale = [(r.pool, r.scheduler_id) for r in rows if r.scheduler_id not in live]
        await _delete(conn, stale)
        if not me_live:
            return PoolShares(sizes, shares, False, len(stale), used)
        current = {r.pool for r in rows if r.scheduler_id == scheduler_id}
        # Pools deleted, and pools this scheduler neither holds nor wants: no row
        # (a row at zero would only be read by every other call).
        await _delete(
            conn,
            [
                (pool, scheduler_id)
                for pool in current
                if pool not in shares or _idle(shares[pool], used.get(pool))
            ],
        )
        now = db_now(dialect)
        values = [
            {
                "b_pool": pool,
                "b_slots": share.slots,
                "b_in_use": used.get(pool, PoolUse(0, 0)).in_use,
                "b_demand": used.get(pool, PoolUse(0, 0)).waiting,
            }
            for pool, share in shares.items()
            if not _idle(share, used.get(pool))
        ]
        changed = [v for v in values if v["b_pool"] in current]
        if changed:
            q = pool_quota.c
            await conn.execute(
                update(pool_quota)
                .where(and_(q.pool == bindparam("b_pool"), q.scheduler_id == scheduler_id))
                .values(
                    slots=bindparam("b_slots"),
                    in_use=bindparam("b_in_use"),
                    demand=bindparam("b_demand"),
                    updated_at=now,
                ),
                changed,
            )
        added = [v for v in values if v["b_pool"] not in current]
        if added:
            await conn.execute(
                insert(pool_quota).values(
                    pool=bindparam("b_pool"),
                    scheduler_id=scheduler_id,
                    slots=bindparam("b_slots"),
                    in_use=bindparam("b_in_use"),
                    demand=bindparam("b_demand"),
                    updated_at=now,
                ),
                added,
            )
    return PoolShares(sizes, shares, True, len(stale), used)


async def release_pools(store: Store, scheduler_id: int) -> int:
    """Give back every share of this scheduler (a graceful stop, once nothing of it
    runs any more); returns how many rows went."""
    async with begin(store.engine) as conn:
        await _lock_pools(conn)
        result = await conn.execute(
            delete(pool_quota).where(pool_quota.c.scheduler_id == scheduler_id)
        )
    return int(result.rowcount or 0)


async def read_quotas(store: Store) -> list[tuple[str, int, int, int, int]]:
    """Every quota row as (pool, scheduler id, slots, in use, demand), by pool then
    scheduler (for ``scheduler status``, the API and tests)."""
    q = pool_quota.c
    async with connect(store.engine) as conn:
        rows = await conn.execute(
            select(q.pool, q.scheduler_id, q.slots, q.in_use, q.demand).order_by(
                q.pool, q.scheduler_id
            )
        )
        return [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _idle(share: Share, use: PoolUse | None) -> bool:
    return share.slots == 0 and (use is None or (use.in_use == 0 and use.waiting == 0))


async def _lock_pools(conn: AsyncConnection) -> dict[str, int]:
    """Every pool's size, its row locked until the commit (in name order: two callers
    never wait for each other crosswise)."""
    c = slot_pool.c
    query = select(c.pool, c.slots).order_by(c.pool).with_for_update()
    return {r.pool: int(r.slots) for r in await conn.execute(query)}


async def _live_schedulers(conn: AsyncConnection, dialect: Dialect) -> set[int]:
    """Registry rows alive by the database's clock and not stopped."""
    h = scheduler_heartbeat.c
    query = select(h.id).where(
        and_(h.state != "stopped", h.expires_at.is_not(None), h.expires_at >= db_now(dialect))
    )
    return {int(r[0]) for r in await conn.execute(query)}


async def _delete(conn: AsyncConnection, keys: list[tuple[str, int]]) -> None:
    """Delete quota rows by primary key (one row lock each, no range locks)."""
    if not keys:
        return
    q = pool_quota.c
    await conn.execute(
        delete(pool_quota).where(
            and_(q.pool == bindparam("b_pool"), q.scheduler_id == bindparam("b_id"))
        ),
        [{"b_pool": pool, "b_id": sid} for pool, sid in keys],
    )


__all__ = ["PoolShares", "read_quotas", "release_pools", "share_pools"]
