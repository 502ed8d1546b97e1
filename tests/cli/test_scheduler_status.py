"""``airloop scheduler status`` lists every scheduler in the registry: alive on the
database's clock, exit 0 while one is alive, old rows only with ``--all``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, update

from airloop.store.db_clock import db_later
from airloop.store.runs import Store
from airloop.store.schema import scheduler_heartbeat

from .support import CliResult, airloop


async def status(home: Path, url: str, *args: str) -> CliResult:
    return await asyncio.to_thread(
        airloop, "scheduler", "status", *args, home=home, env={"AIRLOOP_DATABASE_URL": url}
    )


def cells(result: CliResult, pid: int) -> list[str]:
    """The table row of the scheduler with this pid, cell by cell."""
    lines = [line for line in result.stdout.splitlines() if f" {pid} " in line]
    assert len(lines) == 1, result.transcript
    return [cell.strip() for cell in lines[0].split("\u2502")[1:-1]]


async def test_status_lists_every_scheduler(home: Path, database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        empty = await status(home, database_url)
        assert empty.code == 1, empty.transcript
        assert "no scheduler has run on this database" in empty.stdout

        now = datetime.now(UTC)
        dialect = store.engine.dialect
        base = {"hostname": "box-a", "started_at": now - timedelta(days=3), "mode": "ha"}
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(scheduler_heartbeat).values(
                    **base,
                    pid=1111,
                    state="running",
                    heartbeat_at=now,
                    expires_at=db_later(dialect, 600),
                    dags_owned=7,
                    loop_lag=0.0021,
                    running_tasks=3,
                    active_runs=2,
                )
            )
            await conn.execute(
                insert(scheduler_heartbeat).values(
                    **{**base, "hostname": "box-b"},
                    pid=2222,
                    state="running",
                    heartbeat_at=now,
                    expires_at=db_later(dialect, -30),  # its lease on life ran out
                    dags_owned=4,
                )
            )
            await conn.execute(
                insert(scheduler_heartbeat).values(
                    **base, pid=3333, state="stopped", heartbeat_at=now - timedelta(days=2)
                )
            )
        listed = await status(home, database_url)
        assert listed.code == 0, listed.transcript
        alive = cells(listed, 1111)
        assert alive[1:5] == ["box-a", "1111", "running", "ha"], listed.transcript
        assert alive[5].endswith("s ago"), listed.transcript
        assert alive[6:] == ["yes", "7", "2.1 ms", "3 tasks, 2 runs"], listed.transcript
        dead = cells(listed, 2222)
        assert dead[1] == "box-b"
        assert dead[6:8] == ["no", "4"], listed.transcript
        assert " 3333 " not in listed.stdout  # stopped two days ago
        assert "1 of 2 schedulers alive" in listed.stdout

        everything = await status(home, database_url, "--all")
        assert cells(everything, 3333)[3] == "stopped"
        assert cells(everything, 3333)[6] == "no"

        async with store.engine.begin() as conn:
            await conn.execute(
                update(scheduler_heartbeat)
                .where(scheduler_heartbeat.c.pid == 1111)
                .values(state="stopped")
            )
        none_alive = await status(home, database_url)
        assert none_alive.code == 1, none_alive.transcript
        assert "no scheduler alive: NOT running" in none_alive.stdout
    finally:
        await store.close()
