"""What sharing a pool between schedulers costs (ADR 0041, ``pool_quota``).

    python benchmarks/pool_quota.py [--backend postgresql|mariadb|both]
        [--callers 3] [--seconds 20] [--calls 300] [--interval 2.0]

Creates a fresh database on the server (the test servers: PostgreSQL on
127.0.0.1:5432, MariaDB on 127.0.0.1:3306; AIRLOOP_TEST_PG / AIRLOOP_TEST_MYSQL
override), a 5-slot pool "p" beside the default pool, and ``callers`` live registry
rows. Each caller is a process of its own (its own event loop and connection pool)
that calls ``share_pools`` for a busy pool: it wants between 2 and 6 slots (so the
callers together want more than 5), task instances start up to its grant and finish
at random. Three phases:

- ``alone``: one caller, as fast as it can (``calls`` calls): the uncontended cost.
- ``renewal``: every caller once per ``interval`` (2 s: the lease renewal), with a
  random offset, for ``seconds``.
- ``flat_out``: every caller as fast as it can (``calls`` calls each): the worst case
  of contention on the pool rows' locks.

Per phase: wall time per call (p50, p95, max, in ms), the time until the usage is read
(``to_locked``: BEGIN, the pool rows locked FOR UPDATE, registry and quota rows read;
with contention the lock wait is in it: ``lock_wait_est`` is its p50/p95 minus the
``alone`` phase's p50), transient errors (deadlocks, lock timeouts: none expected, the
lock order is fixed) and calls per second over all callers. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import time
import uuid
from typing import Any

from airloop.core.pools import PoolUse
from airloop.exceptions import TransientDatabaseError

PG_ADMIN = os.environ.get("AIRLOOP_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("AIRLOOP_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306/test")


async def _admin(url: str, statements: list[str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _prepare(url: str, callers: int) -> list[int]:
    from sqlalchemy import insert

    from airloop.store.db_clock import db_later, db_now
    from airloop.store.pools import create_pool, seed_pools
    from airloop.store.runs import Store
    from airloop.store.schema import scheduler_heartbeat

    store = await Store.open(url)
    try:
        await seed_pools(store, {"default_pool": 100_000})
        await create_pool(store, "p", 5, None)
        dialect = store.engine.dialect
        ids = []
        async with store.engine.begin() as conn:
            for _ in range(callers):
                result = await conn.execute(
                    insert(scheduler_heartbeat).values(
                        hostname="bench",
                        pid=0,
                        state="running",
                        started_at=db_now(dialect),
                        heartbeat_at=db_now(dialect),
                        expires_at=db_later(dialect, 3600),
                        mode="ha",
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                ids.append(int(pk[0]))
        return ids
    finally:
        await store.close()


async def _caller(
    url: str, sid: int, calls: int | None, seconds: float, interval: float, seed: int
) -> dict[str, Any]:
    from airloop.store.pool_quotas import share_pools
    from airloop.store.runs import Store

    rng = random.Random(seed)
    store = await Store.open(url)
    totals: list[float] = []
    locked: list[float] = []
    errors = 0
    in_use, want = 0, rng.randrange(2, 7)
    try:
        await share_pools(store, sid, dict)  # connect and warm up
        end = time.monotonic() + seconds
        if calls is None:
            await asyncio.sleep(rng.uniform(0, interval))
        began = time.monotonic()
        n = 0
        while (n < calls) if calls is not None else (time.monotonic() < end):
            n += 1
            if in_use and rng.random() < 0.5:
                done = rng.randrange(1, in_use + 1)
                in_use -= done
            want = max(in_use, rng.randrange(2, 7))
            start = time.perf_counter()
            at: list[float] = []
            use = {"p": PoolUse(in_use, want - in_use)}

            def usage(use: dict[str, PoolUse] = use, at: list[float] = at) -> dict[str, PoolUse]:
                at.append(time.perf_counter())
                return use

            try:
                result = await share_pools(store, sid, usage)
            except TransientDatabaseError:
                errors += 1
                continue
            totals.append(time.perf_counter() - start)
            locked.append(at[0] - start)
            in_use = max(in_use, min(want, result.grants["p"]))
            if calls is None:
                await asyncio.sleep(max(0.0, interval - totals[-1]))
        elapsed = time.monotonic() - began
    finally:
        await store.close()
    return {"totals": totals, "locked": locked, "errors": errors, "elapsed": elapsed}


def _child(args: tuple[str, int, int | None, float, float, int], out: Any) -> None:
    out.put(asyncio.run(_caller(*args)))


def _phase(
    url: str, ids: list[int], calls: int | None, seconds: float, interval: float
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=((url, sid, calls, seconds, interval, n), queue))
        for n, sid in enumerate(ids)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered) * 1000, 2),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


def _summary(results: list[dict[str, Any]], alone_locked: float | None) -> dict[str, Any]:
    wall = max(r["elapsed"] for r in results)
    totals = [t for r in results for t in r["totals"]]
    locked = [t for r in results for t in r["locked"]]
    out: dict[str, Any] = {
        "calls": len(totals),
        "calls_per_s": round(len(totals) / wall, 1) if wall else None,
        "per_call_ms": _ms(totals),
        "to_locked_ms": _ms(locked),
        "transient_errors": sum(r["errors"] for r in results),
    }
    if alone_locked is not None and locked:
        ordered = sorted(locked)
        out["lock_wait_est_ms"] = {
            "p50": round(max(0.0, statistics.median(ordered) - alone_locked) * 1000, 2),
            "p95": round(
                max(0.0, ordered[int(0.95 * (len(ordered) - 1))] - alone_locked) * 1000, 2
            ),
        }
    return out


def bench(
    backend: str, callers: int, seconds: float, calls: int, interval: float
) -> dict[str, Any]:
    admin = PG_ADMIN if backend == "postgresql" else MY_ADMIN
    name = f"airloop_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(admin, [f"CREATE DATABASE {name}"]))
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        ids = asyncio.run(_prepare(url, callers))
        out: dict[str, Any] = {"backend": backend, "callers": callers, "pool_slots": 5}
        alone = _phase(url, ids[:1], calls, 0.0, 0.0)
        out["alone"] = _summary(alone, None)
        alone_locked = statistics.median(alone[0]["locked"])
        renewal = _phase(url, ids, None, seconds, interval)
        out["renewal"] = _summary(renewal, alone_locked)
        out["renewal"]["interval_s"] = interval
        flat = _phase(url, ids, calls, 0.0, 0.0)
        out["flat_out"] = _summary(flat, alone_locked)
        # A shared machine: the load says how much of the wall time is waiting for
        # a core rather than for the database.
        out["loadavg_1m"] = round(os.getloadavg()[0], 1)
        return out
    finally:
        drop = f"DROP DATABASE {name}" + (" WITH (FORCE)" if backend == "postgresql" else "")
        asyncio.run(_admin(admin, [drop]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["postgresql", "mariadb", "both"], default="both")
    parser.add_argument("--callers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    backends = ["postgresql", "mariadb"] if args.backend == "both" else [args.backend]
    print(
        json.dumps(
            [bench(b, args.callers, args.seconds, args.calls, args.interval) for b in backends],
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
