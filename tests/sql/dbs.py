"""The databases the SQL tests talk to: the real PostgreSQL and MariaDB servers (db
``test``) and SQLite files, reached through ``AIRLOOP_CONN_<ID>`` connections.

Each test gets table names of its own (dropped afterwards), so tests running at the
same time on the shared servers never collide. Off CI an absent server skips the
test with a one-line reason; under CI (CI=true) it fails it.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import asyncmy
import asyncpg
import pytest

PG_URI = os.environ.get("AIRLOOP_TEST_SQL_PG", "postgres://root@127.0.0.1:5432/test")
MY_URI = os.environ.get("AIRLOOP_TEST_SQL_MYSQL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ["sqlite", "postgres", "mariadb"]
SERVERS = ["postgres", "mariadb"]


def _unavailable(backend: str, exc: BaseException) -> None:
    message = f"{backend} server not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: CI needs it", pytrace=False)
    pytest.skip(message)


@dataclass
class Db:
    """One backend for one test: its connection id, table names and raw access."""

    backend: str
    conn_id: str
    uri: str
    path: Path | None = None
    table: str = field(default_factory=lambda: f"t_{uuid.uuid4().hex[:12]}")

    @property
    def ph(self) -> str:
        """The positional placeholder the backend's hook takes."""
        return "?" if self.backend == "sqlite" else "%s"

    def named(self, name: str) -> str:
        """The named placeholder the backend's hook takes."""
        return f":{name}" if self.backend == "sqlite" else f"%({name})s"

    def other(self, suffix: str) -> str:
        return f"{self.table}_{suffix}"

    async def raw(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a connection of the driver's own (not the hook's)."""
        if self.backend == "postgres":
            conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="root", database="test")
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()
        if self.backend == "mariadb":
            my = await asyncmy.connect(
                host="127.0.0.1",
                port=3306,
                user="root",
                password="",
                database="test",
                autocommit=True,
            )
            try:
                async with my.cursor() as cursor:
                    await cursor.execute(sql, args or None)
                    return [tuple(r) for r in await cursor.fetchall() or ()]
            finally:
                await my.ensure_closed()
        assert self.path is not None
        async with aiosqlite.connect(self.path) as lite:
            cursor = await lite.execute(sql, args)
            rows = [tuple(r) for r in await cursor.fetchall()]
            await lite.commit()
            return rows

    async def alive(self, ids: set[int]) -> set[int]:
        """Which of these server connection ids are still open."""
        if not ids:
            return set()
        if self.backend == "postgres":
            rows = await self.raw(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", sorted(ids)
            )
        else:
            marks = ", ".join(str(int(i)) for i in ids)
            rows = await self.raw(
                f"SELECT id FROM information_schema.processlist WHERE id IN ({marks})"
            )
        return {int(r[0]) for r in rows}

    async def gone(self, ids: set[int], within: float = 20.0) -> set[int]:
        """Wait (polling) until none of these connections is listed by the server; the
        ones still listed after ``within`` seconds. A server drops a closed connection
        from its list a moment after the client has closed it."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = await self.alive(ids)
            if not left or asyncio.get_running_loop().time() > deadline:
                return left
            await asyncio.sleep(0.05)

    @property
    def connection_id_sql(self) -> str:
        """A query returning the server's id of the connection it runs on."""
        return "SELECT pg_backend_pid()" if self.backend == "postgres" else "SELECT connection_id()"


async def open_db(
    backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, conn_id: str = "db"
) -> AsyncIterator[Db]:
    if backend == "sqlite":
        path = tmp_path / "data.db"
        uri = json.dumps({"conn_type": "sqlite", "host": str(path)})
        db = Db(backend, conn_id, uri, path=path)
    else:
        db = Db(backend, conn_id, PG_URI if backend == "postgres" else MY_URI)
        try:
            await db.raw("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server
            _unavailable(backend, exc)
    monkeypatch.setenv(f"AIRLOOP_CONN_{conn_id.upper()}", db.uri)
    try:
        yield db
    finally:
        if backend != "sqlite":
            for suffix in ("", "_b", "_c"):
                await db.raw(f"DROP TABLE IF EXISTS {db.table}{suffix}")
