"""The scheduler's ear for changes other processes write (ADR 0041, "Creating runs").

On PostgreSQL a ``ChangeListener`` holds one connection of its own, outside the pool
(no pre-ping or recycling may swap it, as ``scheduler_lock`` does), LISTENs on
``airloop.store.notify.CHANNEL`` and sets ``changed`` for every notification: the
scheduler service waits on it beside its poll, so a run triggered from the CLI or the
API starts without waiting for the poll interval.

If that connection ends (the server restarted, ``pg_terminate_backend``, a network
partition found by the periodic check) the listener connects again with backoff and,
once it listens again, sets ``changed`` once: what was written during the gap went
unheard, so the service looks. Elsewhere (MySQL/MariaDB have no LISTEN, nor SQLite)
``changed`` is never set and the poll alone finds changes.

``listen_for_changes`` owns the listening task: it is cancelled and awaited (bounded)
when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from airloop.store.notify import CHANNEL

log = logging.getLogger(__name__)

#: How often the listening connection is checked (a silently dropped connection
#: delivers nothing and reports nothing), and how long the check may take.
CHECK_INTERVAL = 15.0
CHECK_TIMEOUT = 10.0
#: Waits between connection attempts: doubled from the first up to the last.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
#: How long closing may take at the end of the block (a dead server must not hold
#: up the scheduler's stop).
CLOSE_TIMEOUT = 5.0
#: The listening session's name in ``pg_stat_activity``.
APPLICATION_NAME = "airloop change listener"


class ChangeListener:
    """``changed`` is set when another process may have written something the
    scheduler acts on. ``wait`` returns once it is set, and clears it."""

    def __init__(
        self,
        database_url: str,
        *,
        check_interval: float = CHECK_INTERVAL,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.url = make_url(database_url)
        self.enabled = self.url.get_backend_name() == "postgresql"
        self.changed = asyncio.Event()
        #: Set while LISTEN is in place (cleared when the connection is lost).
        self.listening = asyncio.Event()
        #: Notifications received, and connections made after a loss (for tests, logs).
        self.received = 0
        self.reconnects = 0
        self.check_interval = check_interval
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        #: The server process id of the listening session (None when not listening).
        self.backend_pid: int | None = None

    async def wait(self) -> Literal[True]:
        """Return when a change may have been written; the next one sets it again."""
        await self.changed.wait()
        self.changed.clear()
        return True

    async def run(self) -> None:
        """Listen until cancelled, connecting again whenever the connection ends."""
        if not self.enabled:
            return
        engine = create_async_engine(
            self.url,
            poolclass=NullPool,
            # Named in pg_stat_activity: an operator (or a test) sees who listens.
            connect_args={"server_settings": {"application_name": APPLICATION_NAME}},
        )
        backoff = self.backoff_first
        listened_before = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                listened_at: float | None = None
                try:
                    conn = await engine.connect()
                except Exception as exc:  # noqa: BLE001 - unreachable: tried again
                    cause = _first_line(exc)
                else:
                    try:
                        listened_at = await self._listen(conn, after_loss=listened_before)
                        cause = "the connection ended"
                    except Exception as exc:  # noqa: BLE001 - a failed connection: again
                        cause = _first_line(exc)
                    finally:
                        self.listening.clear()
                        self.backend_pid = None
                        await _discard(conn)
                if listened_at is not None:
                    listened_before = True
                    # A connection that lasted resets the backoff; one that drops at
                    # once (a flapping server) keeps doubling it.
                    if loop.time() - listened_at > self.backoff_max:
                        backoff = self.backoff_first
                log.warning(
                    "not listening for changes (%s); trying again in %gs "
                    "(the poll finds them meanwhile)",
                    cause,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        finally:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await engine.dispose()
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - stopping anyway
                log.debug("disposing of the listener's engine: %s", exc)

    async def _listen(self, conn: AsyncConnection, *, after_loss: bool) -> float | None:
        """LISTEN on ``conn`` until its connection is lost or cancelled. Returns when
        it started listening (the loop's clock), None if LISTEN failed."""
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg's Connection
        lost = asyncio.Event()
        driver.add_termination_listener(lambda _conn: lost.set())
        try:
            await driver.add_listener(CHANNEL, self._on_notification)
            self.backend_pid = int(driver.get_server_pid())
        except Exception as exc:  # noqa: BLE001 - the connection failed at once
            log.warning("could not LISTEN for changes: %s", _first_line(exc))
            return None
        started = asyncio.get_running_loop().time()
        self.listening.set()
        if after_loss:
            # Changes committed while nobody listened went unheard: look once.
            self.reconnects += 1
            self.changed.set()
            log.warning("listening for changes again")
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_interval):
                    await lost.wait()
            if lost.is_set() or not await _answers(driver):
                break
        return started

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.received += 1
        log.debug("change notified: %s", payload)
        self.changed.set()


async def _answers(driver: Any) -> bool:
    """Does the listening session still answer? (A dropped network says nothing.)"""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await driver.fetchval("SELECT 1")
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - any failure: lost
        log.warning("the connection listening for changes does not answer: %s", exc)
        return False
    return True


async def _discard(conn: AsyncConnection) -> None:
    """Throw the connection away (it may be dead): never returned to a pool."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await conn.invalidate()
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - it is dead already
        log.debug("closing the listening connection: %s", exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.asynccontextmanager
async def listen_for_changes(database_url: str) -> AsyncIterator[ChangeListener]:
    """A listener running for the block (on PostgreSQL; idle elsewhere). Its task is
    cancelled and awaited, for at most ``CLOSE_TIMEOUT`` seconds, when the block ends."""
    listener = ChangeListener(database_url)
    task = asyncio.create_task(listener.run(), name="airloop-change-listener")
    try:
        yield listener
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if not done:
            log.warning("the change listener did not stop within %gs", CLOSE_TIMEOUT)
        elif not task.cancelled() and task.exception() is not None:
            log.error("the change listener failed: %s", task.exception())


__all__ = ["APPLICATION_NAME", "ChangeListener", "listen_for_changes"]
