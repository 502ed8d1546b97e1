"""``SqliteHook`` on aiosqlite (each connection's work runs in its own thread).

Parameters: sqlite3's own, as Airflow's SqliteHook takes them: ``?`` with a list or
tuple, ``:name`` with a dict.

Connection: the database file is the connection's host (Airflow's field:
``{"conn_type": "sqlite", "host": "/data/app.db"}``), else its schema (the URI form
``sqlite:////data/app.db``); ``:memory:`` is refused (each pooled connection would
see a database of its own). Extra ``timeout`` (seconds to wait for a lock) and
``pool_size``. Other extra keys are not read.
"""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar

import aiosqlite

from airloop.connections import Connection, InvalidConnection
from airloop.hooks.sql import DbApiHook, QueryResult, one_line, parameters_kind


class SqliteHook(DbApiHook):
    """Airflow's ``SqliteHook``: ``SqliteHook(sqlite_conn_id="...")``."""

    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "Sqlite"
    conn_types: ClassVar[tuple[str, ...]] = ("sqlite",)
    placeholder: ClassVar[str] = "?"

    def database_path(self, conn: Connection) -> str:
        path = self.schema or conn.host or conn.schema
        if not path:
            raise InvalidConnection(
                f"connection {self.conn_id!r}: a sqlite connection needs the database file "
                "in host (or the URI's path)"
            )
        if path == ":memory:" or path.startswith("file::memory:"):
            raise InvalidConnection(
                f"connection {self.conn_id!r}: an in-memory sqlite database cannot be shared "
                "by a pool of connections; use a file"
            )
        return path

    async def _connect(self, conn: Connection) -> Any:
        timeout = conn.extra_dejson.get("timeout", 5.0)
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            raise InvalidConnection(
                f"connection {self.conn_id!r}: extra timeout must be seconds, got {timeout!r}"
            ) from None
        # isolation_level=None: no implicit transactions; run() says BEGIN / COMMIT.
        return await aiosqlite.connect(
            self.database_path(conn), timeout=seconds, isolation_level=None
        )

    def _where(self, conn: Connection) -> str:
        return self.schema or conn.host or conn.schema or "?"

    async def _close(self, raw: Any) -> None:
        await raw.close()

    #: aiosqlite's connection is a thread: it is always closed (and joined) politely.
    can_abort: ClassVar[bool] = False

    async def _begin(self, raw: Any) -> None:
        await raw.execute("BEGIN")

    async def _commit(self, raw: Any) -> None:
        if raw.in_transaction:
            await raw.execute("COMMIT")

    async def _rollback(self, raw: Any) -> None:
        if raw.in_transaction:
            await raw.execute("ROLLBACK")

    async def _execute(self, raw: Any, statement: str, parameters: Any, fetch: bool) -> QueryResult:
        kind = parameters_kind(parameters)
        cursor = await raw.execute(statement, () if kind == "none" else parameters)
        try:
            if cursor.description is None:
                return QueryResult(statement, None, [], cursor.rowcount)
            columns = [d[0] for d in cursor.description]
            rows = [tuple(r) for r in await cursor.fetchall()]
            return QueryResult(statement, columns, rows, cursor.rowcount)
        finally:
            await cursor.close()

    async def _executemany(self, raw: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        await raw.executemany(statement, rows)

    def _insert_statement(
        self,
        table: str,
        target_fields: Any,
        width: int,
        replace: bool,
        replace_index: Any,
    ) -> str:
        base = super()._insert_statement(table, target_fields, width, False, None)
        return base.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1) if replace else base

    def _driver_message(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.Error):
            return one_line(str(exc)) or type(exc).__name__
        return None
