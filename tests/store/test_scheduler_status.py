"""The scheduler registry as status and health read it: alive on the database's clock
(expires_at), the heartbeat's age as a fallback, old rows left out unless asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from airloop.store.db_clock import db_later
from airloop.store.runs import Store
from airloop.store.schema import scheduler_heartbeat
from airloop.store.service import ServiceStore


async def test_every_scheduler_and_whether_it_is_alive(database_url: str) -> None:
    store = await Store.open(database_url)
    service = ServiceStore(store)
    try:
        assert await service.schedulers(stale_after=30) == []
        now = datetime.now(UTC)
        dialect = store.engine.dialect
        base = {"hostname": "box", "started_at": now - timedelta(days=3), "mode": "ha"}
        rows = [
            # Renewed: expires in a minute on the database's clock.
            {
                "pid": 1,
                "state": "running",
                "heartbeat_at": now,
                "expires_at": db_later(dialect, 60),
            },
            # A fresh heartbeat but its lease on life is over (paused past it): dead.
            {
                "pid": 2,
                "state": "running",
                "heartbeat_at": now,
                "expires_at": db_later(dialect, -5),
            },
            # No expires_at (a scheduler from before the registry had it): heartbeat age.
            {"pid": 3, "state": "running", "heartbeat_at": now, "expires_at": None},
            {"pid": 4, "state": "running", "heartbeat_at": now - timedelta(hours=1)},
            # Stopped two days ago: listed only when asked for.
            {"pid": 5, "state": "stopped", "heartbeat_at": now - timedelta(days=2)},
            # Stopped, but its expiry not reached yet: a stopped row is never alive.
            {
                "pid": 6,
                "state": "stopped",
                "heartbeat_at": now,
                "expires_at": db_later(dialect, 60),
            },
        ]
        async with store.engine.begin() as conn:
            for row in rows:
                await conn.execute(
                    insert(scheduler_heartbeat).values(**base, dags_owned=row["pid"] * 10, **row)
                )
        listed = await service.schedulers(stale_after=30)
        assert [(s.row.pid, s.alive) for s in listed] == [
            (1, True),
            (2, False),
            (3, True),
            (4, False),
            (6, False),
        ]
        assert listed[0].row.dags_owned == 10
        assert listed[0].row.mode == "ha"
        assert 3000 < listed[3].heartbeat_age < 4000  # an hour, on the database's clock
        everything = await service.schedulers(stale_after=30, include_old=True)
        assert [s.row.pid for s in everything] == [1, 2, 3, 4, 5, 6]
        assert not everything[4].alive
        # A generous fallback keeps the hour-old heartbeat alive: the limit is honoured.
        assert [s.alive for s in await service.schedulers(stale_after=7200)][3] is True
    finally:
        await store.close()
