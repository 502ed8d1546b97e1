"""Pool quotas on the real servers (ADR 0041): several Store instances as separate
schedulers (registry rows inserted directly, live or expired), each taking its share
of the pools under the pool rows' locks."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest_asyncio
from sqlalchemy import insert, update

from airloop.core.pools import PoolUse
from airloop.store.db_clock import db_later, db_now
from airloop.store.pool_quotas import PoolShares, read_quotas, release_pools, share_pools
from airloop.store.pools import create_pool, delete_pool, seed_pools, update_pool
from airloop.store.runs import Store
from airloop.store.schema import scheduler_heartbeat

WORKER = Path(__file__).with_name("quota_worker.py")


async def register(store: Store, ttl: float = 60.0, state: str = "running") -> int:
    """A registry row live for ``ttl`` seconds on the database's clock (expired when
    negative)."""
    dialect = store.engine.dialect
    async with store.engine.begin() as conn:
        result = await conn.execute(
            insert(scheduler_heartbeat).values(
                hostname="test",
                pid=1,
                state=state,
                started_at=db_now(dialect),
                heartbeat_at=db_now(dialect),
                expires_at=db_later(dialect, ttl),
                mode="ha",
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0])


async def set_registry(
    store: Store, sid: int, *, ttl: float | None = None, state: str | None = None
) -> None:
    dialect = store.engine.dialect
    values: dict[str, object] = {}
    if ttl is not None:
        values["expires_at"] = db_later(dialect, ttl)
    if state is not None:
        values["state"] = state
    async with store.engine.begin() as conn:
        await conn.execute(
            update(scheduler_heartbeat).where(scheduler_heartbeat.c.id == sid).values(**values)
        )


class Scheduler:
    """One scheduler: its own Store (connection pool), registry row and usage; its
    admission fills the grant up to what it wants, as the engine's would."""

    def __init__(self, store: Store, sid: int, want: int = 0, pool: str = "p") -> None:
        self.store, self.sid, self.pool = store, sid, pool
        self.want = want
        self.in_use = 0
        self.result: PoolShares | None = None

    def usage(self) -> Mapping[str, PoolUse]:
        return {self.pool: PoolUse(self.in_use, max(0, self.want - self.in_use))}

    async def call(self) -> PoolShares:
        self.result = await share_pools(self.store, self.sid, self.usage)
        self.in_use = max(self.in_use, min(self.want, self.grant))
        return self.result

    def finish(self, n: int = 1) -> None:
        """``n`` task instances finished (their slots free; they still want more
        only if ``want`` says so)."""
        self.in_use -= n
        self.want -= n

    @property
    def grant(self) -> int:
        assert self.result is not None
        return self.result.grants.get(self.pool, 0)

    @property
    def slots(self) -> int:
        assert self.result is not None
        share = self.result.shares.get(self.pool)
        return 0 if share is None else share.slots


@pytest_asyncio.fixture
async def stores(server_database_url: str) -> AsyncIterator[list[Store]]:
    first = await Store.open(server_database_url)  # creates the schema
    others = [await Store.open(server_database_url) for _ in range(2)]
    await seed_pools(first, {"default_pool": 100_000})
    await create_pool(first, "p", 5, None)
    try:
        yield [first, *others]
    finally:
        for store in [first, *others]:
            await store.close()


async def sums(store: Store) -> dict[str, tuple[int, int]]:
    """Per pool: (sum of shares, sum of slots in use) as the table says."""
    out: dict[str, tuple[int, int]] = {}
    for pool, _, slots, in_use, _ in await read_quotas(store):
        s, u = out.get(pool, (0, 0))
        out[pool] = (s + slots, u + in_use)
    return out


async def test_a_scheduler_alone_gets_all_it_wants(stores: list[Store]) -> None:
    a = Scheduler(stores[0], await register(stores[0]), want=9)
    await a.call()
    assert (a.grant, a.in_use) == (5, 5)
    assert a.result is not None
    assert a.result.sizes["p"] == 5
    # And the default pool's slots (nobody wants them) are taken up front.
    assert a.result.grants["default_pool"] == a.result.sizes["default_pool"]
    assert await read_quotas(stores[0]) == [
        ("default_pool", a.sid, a.result.sizes["default_pool"], 0, 0),
        ("p", a.sid, 5, 0, 9),  # as reported when it asked
    ]


async def test_the_fair_split_under_contention_and_shrinking(stores: list[Store]) -> None:
    a, b, c = [Scheduler(s, await register(s), want=9) for s in stores]
    await a.call()
    assert a.in_use == 5
    await b.call()
    await c.call()
    assert (b.grant, c.grant) == (0, 0)  # a holds the pool; both now report waiting
    await a.call()
    # a is above its fair part (2 of 5 for the lowest id) while others wait: it keeps
    # the slots its five task instances hold and admits nothing more.
    assert (a.slots, a.grant) == (5, 2)
    for _ in range(3):
        a.finish()
        await a.call()
        await b.call()
        await c.call()
        assert (await sums(stores[0]))["p"][0] <= 5
    assert sorted([a.in_use, b.in_use, c.in_use]) == [1, 2, 2]
    assert (await sums(stores[0]))["p"][0] == 5  # all of it shared out, none idle


async def test_idle_shares_move_to_the_one_that_waits(stores: list[Store]) -> None:
    idle = [Scheduler(s, await register(s)) for s in stores[:2]]
    busy = Scheduler(stores[2], await register(stores[2]), want=5)
    for s in idle:
        await s.call()
    assert [s.grant for s in idle] == [2, 2]  # ceil(5 / 3 live) each, up front
    await busy.call()
    assert busy.grant == 1
    for s in idle:
        await s.call()  # busy waits: idle headroom is given up
    assert [s.grant for s in idle] == [0, 0]
    await busy.call()
    assert (busy.grant, busy.in_use) == (5, 5)


async def test_an_expired_or_stopped_schedulers_quota_is_reclaimed(stores: list[Store]) -> None:
    dead = Scheduler(stores[0], await register(stores[0]), want=3)
    gone = Scheduler(stores[1], await register(stores[1]), want=2)
    await dead.call()
    await gone.call()
    live = Scheduler(stores[2], await register(stores[2]), want=5)
    await live.call()
    assert live.grant == 0
    await set_registry(stores[0], dead.sid, ttl=-1.0)
    await set_registry(stores[1], gone.sid, state="stopped")
    result = await live.call()
    assert result.reclaimed == 4  # p and default_pool of each
    assert live.grant == 5
    assert {sid for _, sid, *_ in await read_quotas(stores[0])} == {live.sid}


async def test_a_scheduler_not_live_holds_nothing(stores: list[Store]) -> None:
    late = Scheduler(stores[0], await register(stores[0], ttl=-1.0), want=2)
    result = await late.call()
    assert not result.live
    assert result.grants == {"default_pool": 0, "p": 0}
    assert await read_quotas(stores[0]) == []


async def test_release_gives_everything_back(stores: list[Store]) -> None:
    a = Scheduler(stores[0], await register(stores[0]), want=5)
    b = Scheduler(stores[1], await register(stores[1]), want=5)
    await a.call()
    await b.call()
    assert b.grant == 0
    assert await release_pools(stores[0], a.sid) == 2
    await b.call()
    assert b.grant == 5


async def test_deleted_and_shrunk_pools(stores: list[Store]) -> None:
    a = Scheduler(stores[0], await register(stores[0]), want=2)
    await a.call()
    assert a.in_use == 2
    assert await delete_pool(stores[0], "p")
    result = await a.call()  # its two task instances still run: no share, no row
    assert "p" not in result.shares
    assert "p" not in result.sizes
    assert [r[0] for r in await read_quotas(stores[0])] == ["default_pool"]
    await create_pool(stores[0], "p", 5, None)
    assert await update_pool(stores[0], "p", slots=1)
    await a.call()
    # Its use (2) is past the pool (1): recorded, and nothing more admitted.
    assert (a.slots, a.grant) == (2, 1)


async def test_concurrent_callers_never_exceed_the_pool(stores: list[Store]) -> None:
    """Three schedulers rebalancing at once from asyncio tasks (one connection pool
    each: the database sees three concurrent clients) while task instances start and
    finish at random; a fourth connection watches the table."""
    rng = random.Random(7)
    schedulers = [Scheduler(s, await register(s)) for s in stores]
    done = asyncio.Event()
    seen: list[tuple[int, int]] = []

    async def drive(s: Scheduler) -> None:
        for _ in range(40):
            s.want = max(s.in_use, s.want + rng.randrange(-1, 3))
            if s.in_use and rng.random() < 0.5:
                s.finish(rng.randrange(1, s.in_use + 1))
            await s.call()

    async def watch() -> None:
        while not done.is_set():
            seen.append((await sums(stores[0])).get("p", (0, 0)))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(drive(s) for s in schedulers))
    finally:
        done.set()
        await watcher
    assert seen
    assert all(shares <= 5 and in_use <= 5 for shares, in_use in seen), seen


async def test_concurrent_processes_never_exceed_the_pool(
    server_database_url: str, stores: list[Store]
) -> None:
    """The same from three processes (quota_worker.py), each checking after every
    call that its admission never exceeds its grant; this one watches the table."""
    ids = [await register(stores[0]) for _ in range(3)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            server_database_url,
            str(sid),
            "30",
            str(seed),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for seed, sid in enumerate(ids)
    ]
    outputs = asyncio.ensure_future(asyncio.gather(*(p.communicate() for p in procs)))
    seen: list[tuple[int, int]] = []
    while not outputs.done():
        seen.append((await sums(stores[0])).get("p", (0, 0)))
        await asyncio.sleep(0.01)
    for p, (out, err) in zip(procs, await outputs, strict=True):
        assert p.returncode == 0, err.decode()
        assert out.decode().strip() == "30 calls"
    assert seen
    assert all(shares <= 5 and in_use <= 5 for shares, in_use in seen), seen
