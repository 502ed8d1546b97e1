"""One scheduler per database: on SQLite, and under ``scheduler_ha = "off"`` or on servers
without ``SKIP LOCKED`` (several schedulers share a database through DAG leases
otherwise: ADR 0041).

SQLite: an OS lock (flock) on a file next to the database. PostgreSQL: a session-level
advisory lock (``pg_try_advisory_lock``); MySQL/MariaDB: a named lock
(``GET_LOCK(name, 0)``). The server locks live as long as the session: they are held
on a connection of their own, kept open for the scheduler's life, outside the pool
(no pre-ping or recycling may swap it). If that connection ends (the server restarted,
an admin ran ``pg_terminate_backend`` or ``KILL``), the lock is gone: the scheduler
checks it every heartbeat (``DatabaseLock.held``) and tries to take it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from airloop.exceptions import AirloopError

log = logging.getLogger(__name__)

#: A check that takes longer than this counts as a lost lock (the server is unreachable).
CHECK_TIMEOUT = 10.0
_NAME = "airloop.scheduler"


class SchedulerAlreadyRunning(AirloopError):
    pass


def advisory_key() -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit number; locks are per database)."""
    return int.from_bytes(hashlib.sha256(_NAME.encode()).digest()[:8], "big", signed=True)


def named_lock(database: str) -> str:
    """The MySQL lock name: these are server-wide, so the database is part of it (<= 64)."""
    name = f"{_NAME}.{database}"
    if len(name) > 64:
        name = f"{_NAME}.{hashlib.sha256(database.encode()).hexdigest()[:40]}"
    return name


@contextlib.contextmanager
def single_instance(database: str) -> Iterator[None]:
    """On SQLite, one scheduler per database file (an OS lock next to it)."""
    path = Path(database).expanduser().with_suffix(".scheduler.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path, "a+")  # noqa: SIM115 - held for the scheduler's life
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SchedulerAlreadyRunning(
                f"another scheduler (pid {holder}) is running on {database}; "
                "SQLite allows one (use PostgreSQL for several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class DatabaseLock:
    """The scheduler lock on a PostgreSQL or MySQL/MariaDB server."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        self.database = parsed.database or ""
        self.name = named_lock(self.database)
        self.key = advisory_key()
        self._engine: AsyncEngine = create_async_engine(parsed, poolclass=NullPool)
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        """Open a connection and take the lock on it: False if another session holds it.
        Connection errors propagate (the caller decides: refuse, or try later)."""
        await self._drop()
        conn = await self._engine.connect()
        try:
            # Autocommit: a session lock needs no transaction, and one left open for
            # days would hold back vacuum (or be killed by idle-in-transaction timeouts).
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            params: dict[str, object]
            if self.backend == "postgresql":
                query, params = "SELECT pg_try_advisory_lock(:key)", {"key": self.key}
            else:
                query, params = "SELECT GET_LOCK(:name, 0)", {"name": self.name}
            got = bool((await conn.execute(text(query), params)).scalar())
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def held(self) -> bool:
        """Is the lock still ours? False when its connection ended or does not answer."""
        conn = self._conn
        if conn is None:
            return False
        params: dict[str, object]
        if self.backend == "postgresql":
            # A session lock lasts as long as the session: a live connection holds it.
            query, params = "SELECT 1", {}
        else:
            query, params = "SELECT IS_USED_LOCK(:name) = CONNECTION_ID()", {"name": self.name}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                return bool((await conn.execute(text(query), params)).scalar())
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - any failure: not held
            log.warning("the scheduler lock's connection failed: %s", exc)
            await self._drop()
            return False

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await conn.invalidate()
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - it is dead already
                log.debug("closing the lost lock connection: %s", exc)

    async def close(self) -> None:
        """Release the lock (by ending its session) and the engine."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        await self._engine.dispose()


@contextlib.asynccontextmanager
async def scheduler_lock(database_url: str) -> AsyncIterator[DatabaseLock | None]:
    """Hold the one-scheduler lock for the block; raise SchedulerAlreadyRunning if
    another scheduler holds it. Yields the server lock to check, None on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            with single_instance(url.database):
                yield None
        else:
            yield None
        return
    lock = DatabaseLock(database_url)
    try:
        if not await lock.acquire():
            raise SchedulerAlreadyRunning(
                f"another scheduler is running on database {lock.database!r} "
                f"({url.render_as_string(hide_password=True)}); one scheduler per database "
                "here (scheduler_ha = 'off', or a server without SKIP LOCKED: see docs/ha.md)"
            )
        yield lock
    finally:
        await lock.close()
