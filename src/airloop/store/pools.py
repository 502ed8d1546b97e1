"""Pools in the database (table ``slot_pool``): what the API edits and the scheduler
service reads on each heartbeat. The settings' ``pools`` seed the table (a pool
missing from it is inserted with the settings' size)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from airloop.core.states import TaskState
from airloop.store.connections import RecordExistsError
from airloop.store.errors import begin, connect
from airloop.store.notify import notify
from airloop.store.runs import Store
from airloop.store.schema import slot_pool, task_instance


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A pool and the slots its task instances take now (from ``task_instance``)."""

    name: str
    slots: int
    description: str | None
    running: int = 0
    queued: int = 0
    scheduled: int = 0

    @property
    def occupied(self) -> int:
        return self.running + self.queued

    @property
    def open(self) -> int:
        return self.slots - self.occupied


async def seed_pools(store: Store, pools: Mapping[str, int]) -> list[str]:
    """Insert the pools of ``pools`` (the settings') the table lacks; returns their names."""
    c = slot_pool.c
    try:
        async with begin(store.engine, RecordExistsError, "pool seeded meanwhile") as conn:
            known = {r.pool for r in await conn.execute(select(c.pool))}
            missing = [name for name in pools if name not in known]
            if missing:
                await conn.execute(
                    insert(slot_pool),
                    [
                        {"pool": name, "slots": pools[name], "description": "from the settings"}
                        for name in missing
                    ],
                )
    except RecordExistsError:
        return []  # the API server and the scheduler seeded at once: the other did
    return missing


async def pool_sizes(store: Store) -> dict[str, int]:
    """Each pool's size as the table says now."""
    c = slot_pool.c
    async with connect(store.engine) as conn:
        return {r.pool: int(r.slots) for r in await conn.execute(select(c.pool, c.slots))}


async def list_pools(store: Store, name: str | None = None) -> list[PoolRecord]:
    """Pools by name (one when ``name`` is given), with the slots their running, queued
    and scheduled task instances take (one GROUP BY over ``task_instance.state``)."""
    c, ti = slot_pool.c, task_instance.c
    pools_query = select(c.pool, c.slots, c.description).order_by(c.pool)
    use_query = (
        select(ti.pool, ti.state, func.sum(ti.pool_slots))
        .where(
            ti.state.in_(
                [TaskState.RUNNING.value, TaskState.QUEUED.value, TaskState.SCHEDULED.value]
            )
        )
        .group_by(ti.pool, ti.state)
    )
    if name is not None:
        pools_query = pools_query.where(c.pool == name)
        use_query = use_query.where(ti.pool == name)
    async with connect(store.engine) as conn:
        rows = (await conn.execute(pools_query)).all()
        use: dict[tuple[str, str], int] = {
            (r[0], r[1]): int(r[2] or 0) for r in await conn.execute(use_query)
        }
    return [
        PoolRecord(
            name=r.pool,
            slots=int(r.slots),
            description=r.description,
            running=use.get((r.pool, TaskState.RUNNING.value), 0),
            queued=use.get((r.pool, TaskState.QUEUED.value), 0),
            scheduled=use.get((r.pool, TaskState.SCHEDULED.value), 0),
        )
        for r in rows
    ]


async def create_pool(store: Store, name: str, slots: int, description: str | None) -> None:
    """A new pool; RecordExistsError when the name is taken."""
    c = slot_pool.c
    async with begin(store.engine, RecordExistsError, f"pool {name!r} already exists") as conn:
        if (await conn.execute(select(c.id).where(c.pool == name))).first() is not None:
            raise RecordExistsError(f"pool {name!r} already exists")
        await conn.execute(
            insert(slot_pool).values(pool=name, slots=slots, description=description)
        )
        await notify(conn, "pool", name)


async def update_pool(store: Store, name: str, **values: int | str | None) -> bool:
    """Change ``slots`` and/or ``description``; False when there is no such pool."""
    if not values:
        return bool(await list_pools(store, name))
    async with begin(store.engine) as conn:
        result = await conn.execute(
            update(slot_pool).where(slot_pool.c.pool == name).values(**values)
        )
        if result.rowcount and "slots" in values:
            await notify(conn, "pool", name)
    return bool(result.rowcount)


async def delete_pool(store: Store, name: str) -> bool:
    async with begin(store.engine) as conn:
        result = await conn.execute(delete(slot_pool).where(slot_pool.c.pool == name))
        if result.rowcount:
            await notify(conn, "pool", name)
    return bool(result.rowcount)


__all__ = [
    "PoolRecord",
    "create_pool",
    "delete_pool",
    "list_pools",
    "pool_sizes",
    "seed_pools",
    "update_pool",
]
