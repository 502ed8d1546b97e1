"""Opening the database: the async engine, SQLite's pragmas, and migrations."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from airloop.exceptions import DatabaseError
from airloop.store.errors import driver_errors
from airloop.store.urls import DatabaseUrlError, check_database_url, import_driver

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

#: The newest migration. Checked against Alembic's own idea of the head by the tests;
#: kept here so that opening a current database does not import Alembic (~0.5 s).
HEAD_REVISION = "0008_scheduler_leases"

__all__ = [
    "HEAD_REVISION",
    "DatabaseError",
    "create_engine",
    "create_schema",
    "current_revision",
    "database_revision",
    "migrate",
    "migrate_blocking",
    "migrate_database",
    "open_engine",
]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (the CLI, a UI) never block the scheduler's writes. NORMAL sync is
    # durable across application crashes; only an OS crash can lose the last commits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, pooled: bool = True
) -> AsyncEngine:
    """An async engine for ``url``; DatabaseError (one line) for a URL airloop cannot use:
    a sync or unknown driver, a driver that is not installed, a SQLite folder that
    cannot be created.

    ``pooled=False``: no connection is kept (NullPool), so the engine can be used from
    any event loop (a lookup from a worker thread's own loop) and needs no closing.
    """
    # Checked before SQLAlchemy sees it: its errors are a page of traceback.
    try:
        check_database_url(url)
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types here
        raise DatabaseError(f"invalid database URL: {exc}") from None
    try:
        import_driver(url)
    except DatabaseUrlError as exc:
        raise DatabaseError(str(exc)) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create {folder}, the SQLite database's folder: {exc.strerror}"
                ) from None
        engine = create_async_engine(parsed, **({} if pooled else {"poolclass": NullPool}))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if not pooled:
        return create_async_engine(parsed, poolclass=NullPool)
    # pre_ping: a connection the server dropped (restart, idle timeout, KILL) is
    # replaced at checkout instead of failing the next write.
    engine = create_async_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=3600,
    )
    event.listen(engine.sync_engine, "connect", _idle_transaction_limit)
    return engine


#: A transaction left idle this long is ended by the server (PostgreSQL, MariaDB):
#: a process paused mid-transaction (SIGSTOP, a frozen VM) must not keep the row
#: locks another scheduler needs to take its DAGs over (ADR 0041). airloop's own
#: transactions never wait on anything but the database.
IDLE_TRANSACTION_SECONDS = 5


def _idle_transaction_limit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT version()")
        version = str(cursor.fetchone()[0]).lower()
        if "postgresql" in version:
            cursor.execute(
                f"SET idle_in_transaction_session_timeout = '{IDLE_TRANSACTION_SECONDS}s'"
            )
        elif "mariadb" in version:
            cursor.execute(f"SET SESSION idle_transaction_timeout = {IDLE_TRANSACTION_SECONDS}")
        # MySQL has no such limit: a paused scheduler's locks last until its session
        # ends (docs/ha.md).
    finally:
        cursor.close()


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return HEAD_REVISION


def alembic_head() -> str | None:
    """The head according to the migration scripts themselves (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's revision, or None for an empty database (no Alembic import)."""
    async with engine.connect() as conn:
        exists = await conn.run_sync(lambda c: c.dialect.has_table(c, "alembic_version"))
        if not exists:
            return None  # nothing was ever migrated
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return result.scalar()


async def migrate(engine: AsyncEngine) -> tuple[str | None, str]:
    """Upgrade the schema to the newest revision. Returns (before, after)."""

    from alembic import command

    sqlite = engine.dialect.name == "sqlite"

    def upgrade(conn: Connection) -> str | None:
        if sqlite:
            # SQLite alters a table by copying it and dropping the old one (Alembic's
            # batch mode); with foreign keys on, dropping dag_run would cascade-delete
            # every task instance, XCom and log row. Off for this connection (before
            # any write: the pragma is a no-op inside a transaction).
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        before = _current(conn)
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return before

    try:
        async with engine.begin() as conn:
            before = await conn.run_sync(upgrade)
    finally:
        if sqlite:
            # The pooled connection has foreign keys off: drop it (new ones get the
            # pragmas again, see _sqlite_pragmas).
            await engine.dispose()
    return before, head_revision()


def migrate_blocking(url: str) -> tuple[str | None, str]:
    """``migrate`` for a thread without an event loop (keeps Alembic off the caller's loop)."""

    async def go() -> tuple[str | None, str]:
        engine = create_engine(url)
        try:
            return await migrate(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def create_schema(engine: AsyncEngine) -> None:
    """Create the newest schema in an empty database and stamp it with the head revision.

    Alembic's cookbook recipe for new databases ("create_all, then stamp"): the same
    tables as replaying every migration (a test compares the two), without importing
    Alembic and its migration scripts on every first run (~0.5 s of CPU).
    """
    from airloop.store.schema import metadata

    async with engine.begin() as conn:
        # Several processes may find the database empty at once (schedulers started
        # together): one creates, the others wait and find it done. MySQL's DDL is not
        # transactional, so a server lock (not the transaction) keeps them apart.
        locked = await _schema_lock(conn)
        try:
            if await conn.run_sync(lambda c: inspect(c).has_table("alembic_version")):
                return
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            )
            await conn.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
            )
        finally:
            if locked is not None:
                await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": locked})


async def _schema_lock(conn: Any) -> str | None:
    """Hold the schema-creation lock for ``conn``'s transaction (PostgreSQL: an advisory
    transaction lock) or session (MySQL: a named lock, returned to release)."""
    name = conn.dialect.name
    database = conn.engine.url.database or ""
    if name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"airloop.schema").digest()[:8], "big", signed=True)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        return None
    if name in ("mysql", "mariadb"):
        lock = f"airloop.schema.{hashlib.sha256(database.encode()).hexdigest()[:40]}"
        got = (await conn.execute(text("SELECT GET_LOCK(:n, 120)"), {"n": lock})).scalar()
        if not got:
            raise DatabaseError(
                f"waited 120s for another process creating the schema of {database!r}"
            )
        return lock
    return None


# -- the opening policy ---------------------------------------------------------------


def _sequence(revision: str) -> int | None:
    """The number a revision id starts with ("0003_rendered" -> 3), if it does."""
    number = revision.split("_", 1)[0]
    return int(number) if number.isdigit() else None


def _is_older(revision: str | None, head: str) -> bool:
    if revision is None or revision == head:
        return False
    mine, newest = _sequence(revision), _sequence(head)
    return mine is not None and newest is not None and mine < newest


async def open_engine(
    url: str,
    *,
    auto_migrate: bool = True,
    pool_size: int = 10,
    max_overflow: int = 20,
    pooled: bool = True,
) -> AsyncEngine:
    """An engine on a database whose schema is current, or DatabaseError (one line).

    An empty database is created on first use (with ``auto_migrate``); a SQLite file
    older than this airloop is upgraded; an older server database is refused until
    'airloop db migrate' ran.
    """
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pooled=pooled)
    try:
        revision = await current_revision(engine)
        head = head_revision()
        if revision is None and auto_migrate:
            # An empty database is created on first use. An existing server database
            # is only ever upgraded on purpose ('airloop db migrate'): on a shared
            # server one upgraded CLI must not change the schema under everyone else.
            try:
                await create_schema(engine)
            except Exception:
                # Two processes creating it at once: fine if the other one did.
                if await current_revision(engine) != head_revision():
                    raise
        elif (
            auto_migrate and engine.url.get_backend_name() == "sqlite" and _is_older(revision, head)
        ):
            # A SQLite file belongs to this one installation: upgrading airloop
            # upgrades its embedded database too, as 'make demo' twice across an
            # upgrade expects. Revision ids start with a zero-padded sequence number.
            log.warning(
                "upgrading SQLite database %s from schema %s to %s",
                engine.url.database,
                revision,
                head,
            )
            await migrate(engine)
        elif revision != head:
            raise DatabaseError(
                f"database schema is at {revision or 'nothing'}, this airloop needs {head}: "
                "run 'airloop db migrate'"
            )
    except DatabaseError:
        await engine.dispose()
        raise
    except Exception as exc:
        await engine.dispose()
        raise DatabaseError(f"cannot open database {engine.url!r}: {exc}") from exc
    return engine


async def migrate_database(url: str) -> tuple[str | None, str]:
    """``airloop db migrate``: upgrade the database at ``url``. Returns (before, after)."""
    engine = create_engine(url)
    try:
        with driver_errors():
            return await migrate(engine)
    finally:
        await engine.dispose()


async def database_revision(url: str) -> str | None:
    """``airloop db check``: the schema revision of the database at ``url`` (None: empty)."""
    engine = create_engine(url)
    try:
        with driver_errors():
            return await current_revision(engine)
    finally:
        await engine.dispose()
