"""Change notifications (PostgreSQL NOTIFY inside the writing transaction) and the
listener that hears them, reconnecting after its connection is killed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from airloop.core.states import DagRunState
from airloop.store.listener import APPLICATION_NAME, ChangeListener, listen_for_changes
from airloop.store.notify import notify
from airloop.store.pools import create_pool, delete_pool, update_pool
from airloop.store.run_requests import add_request
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


class Heard:
    """The payloads a plain asyncpg LISTEN session receives."""

    def __init__(self) -> None:
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.put_nowait(payload)

    async def next(self, within: float = 10.0) -> str:
        async with asyncio.timeout(within):
            return await self.payloads.get()


async def _until(check: asyncio.Event, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        await check.wait()


async def test_writers_notify_on_commit_only(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    engine = create_async_engine(postgres_url)
    heard = Heard()
    try:
        async with engine.connect() as listening:
            raw = await listening.get_raw_connection()
            await raw.driver_connection.add_listener("airloop_changes", heard)  # type: ignore[union-attr]

            # A transaction rolled back notifies no one: the change never happened.
            async with store.engine.connect() as conn:
                transaction = await conn.begin()
                await notify(conn, "queued", "never")
                await transaction.rollback()
            service = ServiceStore(store)
            run_pk = await service.queue_run("d1", "r1", {}, WHEN)
            # The rolled-back notification is not delivered, not even late.
            assert await heard.next() == "queued:d1"
            await service.sync_dags({"d1": ("/dags/d1.py", None)}, [])
            assert await service.set_paused("d1", True)
            assert await heard.next() == "paused:d1"
            assert not await service.set_paused("unknown", True)  # nothing changed
            await add_request(store, run_pk, "mark_failed", "admin")
            assert await heard.next() == "mark_failed:d1"
            await create_pool(store, "p", 2, None)
            assert await heard.next() == "pool:p"
            assert await update_pool(store, "p", description="only the text")
            assert await update_pool(store, "p", slots=3)  # a size the schedulers use
            assert await heard.next() == "pool:p"
            assert await delete_pool(store, "p")
            assert await heard.next() == "pool:p"
            await service.set_run_state(run_pk, DagRunState.QUEUED)
            assert await heard.next() == "queued:d1"
            assert heard.payloads.empty()
    finally:
        await engine.dispose()
        await store.close()


async def test_notify_is_a_no_op_without_listen(database_url: str) -> None:
    """SQLite and MariaDB: the writes work unchanged (the poll finds them)."""
    store = await Store.open(database_url)
    try:
        assert await ServiceStore(store).queue_run("d1", "r1", {}, WHEN) > 0
        listener = ChangeListener(database_url)
        assert listener.enabled == database_url.startswith("postgresql")
        if not listener.enabled:
            await asyncio.wait_for(listener.run(), 5)  # returns at once: nothing to hear
            assert not listener.changed.is_set()
    finally:
        await store.close()


async def test_listener_hears_commits_and_reconnects_after_its_backend_is_killed(
    postgres_url: str,
) -> None:
    store = await Store.open(postgres_url)
    service = ServiceStore(store)
    try:
        async with listen_for_changes(postgres_url) as listener:
            await _until(listener.listening)
            first_pid = listener.backend_pid
            assert first_pid is not None
            assert not listener.changed.is_set()

            await service.queue_run("d1", "r1", {}, WHEN)
            await asyncio.wait_for(listener.wait(), 10)
            assert listener.received == 1

            # An admin (or a failover) ends the listening session.
            async with store.engine.connect() as conn:
                killed = await conn.scalar(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}
                )
            assert killed
            # It listens again on a new session and wakes the service once: what was
            # written in the gap went unheard.
            await asyncio.wait_for(listener.wait(), 30)
            await _until(listener.listening)
            assert listener.reconnects == 1
            assert listener.backend_pid not in (None, first_pid)

            # A trigger still wakes it.
            await service.queue_run("d1", "r2", {}, datetime(2026, 1, 2, tzinfo=UTC))
            await asyncio.wait_for(listener.wait(), 10)
            assert listener.received == 2
        # The block's end closed the listening session (no connection left behind;
        # the server ends the backend once it sees the socket closed).
        left = text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND datname = current_database()"
        )
        async with asyncio.timeout(10):
            while True:
                async with store.engine.connect() as conn:
                    if await conn.scalar(left, {"name": APPLICATION_NAME}) == 0:
                        break
                await asyncio.sleep(0.05)
    finally:
        await store.close()
