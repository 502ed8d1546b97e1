"""The connection and variable tables on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from airloop.exceptions import DatabaseError
from airloop.store.connections import ConnectionStore, RecordExistsError, ping_database
from airloop.store.records import ConnectionRecord, VariableRecord


async def test_connections_round_trip_and_conflicts(database_url: str) -> None:
    store = await ConnectionStore.open(database_url)
    try:
        pg = ConnectionRecord(
            "pg", "postgres", "the warehouse", "db.local", "wh", "me", "tok", 5432, "x", True, True
        )
        await store.add_connections([pg, ConnectionRecord("http_api", "http", host="h")])
        assert await store.get_connection("pg") == pg
        assert await store.get_connection("nope") is None
        assert [c.conn_id for c in await store.connections()] == ["http_api", "pg"]
        with pytest.raises(RecordExistsError, match="connection 'pg' already exists"):
            await store.add_connections([ConnectionRecord("pg", "http")])
        await store.add_connections([ConnectionRecord("pg", "http")], overwrite=True)
        replaced = await store.get_connection("pg")
        assert replaced == ConnectionRecord("pg", "http")
        assert await store.delete_connection("pg") is True
        assert await store.delete_connection("pg") is False
    finally:
        await store.close()


async def test_variables_round_trip_and_rewrite(database_url: str) -> None:
    store = await ConnectionStore.open(database_url)
    try:
        await store.set_variables([VariableRecord("a", "1"), VariableRecord("b", "x" * 100_000)])
        await store.set_variables([VariableRecord("a", "2", "doc", True)])
        assert await store.get_variable("a") == VariableRecord("a", "2", "doc", True)
        long = await store.get_variable("b")
        assert long is not None
        assert long.val == "x" * 100_000
        with pytest.raises(RecordExistsError, match="variable 'a' already exists"):
            await store.set_variables([VariableRecord("a", "3")], overwrite=False)
        await store.add_connections([ConnectionRecord("c", password="p", is_encrypted=True)])
        counts = await store.rewrite_secrets(
            lambda c: ConnectionRecord(c.conn_id, password=(c.password or "") + "!"),
            lambda v: VariableRecord(v.key, (v.val or "")[:1] + "!"),
        )
        assert counts == (1, 2)
        assert (await store.get_connection("c")) == ConnectionRecord("c", password="p!")
        assert [v.val for v in await store.variables()] == ["2!", "x!"]
        assert await store.delete_variable("a") is True
        assert [v.key for v in await store.variables()] == ["b"]
    finally:
        await store.close()


async def test_ping_a_database(database_url: str) -> None:
    assert await ping_database(database_url) in {"sqlite", "postgresql", "mysql"}


async def test_ping_a_closed_port_is_a_one_line_error() -> None:
    with pytest.raises(DatabaseError, match=r"^cannot connect: ") as info:
        await ping_database("postgresql+asyncpg://nobody@127.0.0.1:1/x")
    assert "\n" not in str(info.value)
