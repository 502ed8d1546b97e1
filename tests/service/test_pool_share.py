"""Pools shared by several schedulers, end to end (ADR 0041): PoolSharer applying the
database's shares to a real Engine, and two Engines in two processes on one
PostgreSQL database never running more task instances of a 3-slot pool at once than
it has."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import insert

from airloop import DAG, task
from airloop.core.pools import PoolUse
from airloop.engine.engine import Engine
from airloop.service.pool_share import PoolSharer
from airloop.settings import Settings
from airloop.store.db_clock import db_later, db_now
from airloop.store.pool_quotas import read_quotas
from airloop.store.pools import create_pool, delete_pool, seed_pools
from airloop.store.runs import Store
from airloop.store.schema import pool_quota, scheduler_heartbeat

WORKER = Path(__file__).with_name("pool_share_worker.py")


async def register(store: Store, ttl: float = 600.0) -> int:
    dialect = store.engine.dialect
    async with store.engine.begin() as conn:
        result = await conn.execute(
            insert(scheduler_heartbeat).values(
                hostname="test",
                pid=1,
                state="running",
                started_at=db_now(dialect),
                heartbeat_at=db_now(dialect),
                expires_at=db_later(dialect, ttl),
                mode="ha",
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0])


@pytest_asyncio.fixture
async def url(server_database_url: str) -> AsyncIterator[str]:
    """A server database with the default pool and the 3-slot pool "p3"."""
    store = await Store.open(server_database_url)
    try:
        await seed_pools(store, {"default_pool": 100_000})
        await create_pool(store, "p3", 3, None)
    finally:
        await store.close()
    yield server_database_url


async def test_the_sharer_applies_the_shares_and_asks_early(url: str, tmp_path: Path) -> None:
    store = await Store.open(url)
    try:
        other = await register(store)
        me = await register(store)
        async with Engine(Settings(home=tmp_path, database_url=url)) as engine:
            assert engine.pool_shares is None  # one scheduler: whole pools
            sharer = PoolSharer(engine, me, ask_gap=0.0)
            assert engine.pool_shares == {}  # nothing admitted before the first call
            first = await sharer.share()
            # Two live schedulers, nobody wants anything yet: half of each up front.
            assert engine.pool_shares == {"default_pool": 50_000, "p3": 2}
            assert first.sizes == {"default_pool": 100_000, "p3": 3}
            assert not sharer.needs_more()
            # The other scheduler takes the rest of p3 (as its own call would).
            async with store.engine.begin() as conn:
                await conn.execute(
                    insert(pool_quota).values(
                        pool="p3",
                        scheduler_id=other,
                        slots=1,
                        in_use=1,
                        demand=0,
                        updated_at=db_now(store.engine.dialect),
                    )
                )
            with DAG("wants_three") as dag:
                for i in range(3):

                    @task(task_id=f"t{i}", pool="p3")
                    async def hold() -> None:
                        await asyncio.sleep(3600)

                    hold()
            run = await engine.start_run(dag)
            for _ in range(200):  # the scheduler's tick admits two of three
                if engine.pool_usage()["p3"] == PoolUse(2, 1):
                    break
                await asyncio.sleep(0.01)
            assert engine.pool_usage()["p3"] == PoolUse(2, 1)
            # The last call granted all it asked (2 of 0 wanted): worth asking now.
            assert sharer.needs_more()
            second = await sharer.share()
            assert second.grants["p3"] == 2  # the other holds the third slot
            assert not sharer.needs_more()  # asked for 3, got 2: wait for the renewal
            # A pass refreshing the sizes (as the service's does) keeps the shares.
            engine.resize_pools({"default_pool": 100_000, "p3": 3})
            assert engine.pool_shares == {"default_pool": 50_000, "p3": 2}
            assert ("p3", me, 2, 2, 1) in await read_quotas(store)
            # A pool deleted while a task instance waits for it: nothing to ask for.
            assert await delete_pool(store, "p3")
            sharer.ask_gap = 0.0
            await sharer.share()
            assert "p3" in engine.short_pools()
            assert not sharer.needs_more()
            engine.request_shutdown("test over")
            await run.done
            assert await sharer.release() == 1  # its default_pool row
            assert [r for r in await read_quotas(store) if r[1] == me] == []
            assert engine.pool_shares == {}
    finally:
        await store.close()


async def test_two_engines_never_run_more_than_the_pool(url: str, tmp_path: Path) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("two engines run on PostgreSQL here (the store tests cover MariaDB)")
    store = await Store.open(url)
    try:
        ids = [await register(store) for _ in range(2)]
    finally:
        await store.close()
    counter = tmp_path / "counter.json"
    counter.write_text("")
    procs = []
    for n, sid in enumerate(ids):
        home = tmp_path / f"home{n}"
        home.mkdir()
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                url,
                str(sid),
                f"pool_share_{n}",
                str(counter),
                str(home),
                "6",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
        assert out.decode().strip() == "success"
    seen = json.loads(counter.read_text())
    assert seen["runs"] == 12
    assert seen["now"] == 0
    assert 1 <= seen["max"] <= 3, seen
