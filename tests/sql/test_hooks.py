"""The SQL hooks against the real databases: statements, parameters, transactions,
errors, and the shared pool (reuse, bounds, closing)."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import json
import uuid
from pathlib import Path

import pytest

from airloop.connections import InvalidConnection
from airloop.executors.resources import Resources
from airloop.hooks import (
    DbApiHook,
    MySqlHook,
    PostgresHook,
    SqlConnectionError,
    SqlError,
    SqliteHook,
    fetch_all_handler,
)
from airloop.hooks.postgres import to_dollar_params
from airloop.hooks.sql import RESOURCE_KEY, json_safe, split_sql
from airloop.runtime import current_resources
from airloop.settings import Settings

from .dbs import Db


async def _table(hook: DbApiHook, db: Db) -> None:
    await hook.run(f"CREATE TABLE {db.table} (id INTEGER PRIMARY KEY, name VARCHAR(40))")


async def test_records_first_and_parameters(db: Db) -> None:
    hook = await DbApiHook.for_connection(db.conn_id)
    await _table(hook, db)
    written = await hook.insert_rows(db.table, [(1, "a"), (2, "b;c"), (3, "it's")], ["id", "name"])
    assert written == 3
    rows = await hook.get_records(
        f"SELECT id, name FROM {db.table} WHERE id >= {db.ph} ORDER BY id", [2]
    )
    assert rows == [(2, "b;c"), (3, "it's")]
    named = await hook.get_records(
        f"SELECT name FROM {db.table} WHERE id = {db.named('k')} OR id = {db.named('k')} + 1",
        {"k": 1},
    )
    assert sorted(named) == [("a",), ("b;c",)]
    assert await hook.get_first(f"SELECT count(*) FROM {db.table}") == (3,)
    assert await hook.get_first(f"SELECT id FROM {db.table} WHERE id > 10") is None
    # and what a different process sees: it was committed
    assert await db.raw(f"SELECT count(*) FROM {db.table}") == [(3,)]


async def test_postgres_takes_its_own_dollar_parameters(pg_db: Db) -> None:
    hook = PostgresHook(postgres_conn_id=pg_db.conn_id)
    assert await hook.get_first("SELECT $1::int + $2::int, '%s'", [2, 3]) == (5, "%s")
    # rendered templates are text: parsed for typed parameters, as psycopg2 would quote them
    row = await hook.get_first(
        "SELECT %s::date + 1, %s::int * 2, %s::numeric, %s::bool, %s::text",
        ["2026-01-31", " 21", "1.25", "true", "12"],
    )
    assert row == (datetime.date(2026, 2, 1), 42, decimal.Decimal("1.25"), True, "12")
    with pytest.raises(SqlError, match=r"parameter \$1 \(date\): 'soon' is not a valid date"):
        await hook.get_first("SELECT %s::date", ["soon"])


async def test_several_statements_return_last_and_lists(db: Db) -> None:
    hook = await DbApiHook.for_connection(db.conn_id)
    await _table(hook, db)
    script = f"""
        INSERT INTO {db.table} VALUES (1, 'x; y');  -- a comment; with a semicolon
        INSERT INTO {db.table} VALUES (2, 'z');
        SELECT id FROM {db.table} ORDER BY id;
    """
    assert await hook.run(script, handler=fetch_all_handler) == [(1,), (2,)]
    every = await hook.run(
        f"SELECT 1; SELECT count(*) FROM {db.table}", handler=fetch_all_handler, return_last=False
    )
    assert every == [[(1,)], [(2,)]]
    listed = await hook.run(
        [f"DELETE FROM {db.table} WHERE id = 1", f"SELECT name FROM {db.table}"],
        handler=fetch_all_handler,
    )
    assert listed == [None, [("z",)]]


async def test_a_failed_statement_rolls_the_run_back(db: Db) -> None:
    hook = await DbApiHook.for_connection(db.conn_id)
    await _table(hook, db)
    with pytest.raises(SqlError):
        await hook.run(
            [f"INSERT INTO {db.table} VALUES (1, 'a')", f"INSERT INTO {db.table} VALUES (1, 'dup')"]
        )
    assert await db.raw(f"SELECT count(*) FROM {db.table}") == [(0,)]
    with pytest.raises(SqlError):
        await hook.run(
            [
                f"INSERT INTO {db.table} VALUES (1, 'a')",
                f"INSERT INTO {db.table} VALUES (1, 'dup')",
            ],
            autocommit=True,
        )
    assert await db.raw(f"SELECT count(*) FROM {db.table}") == [(1,)]


async def test_an_error_names_the_statement_and_the_database_message(db: Db) -> None:
    hook = await DbApiHook.for_connection(db.conn_id)
    missing = db.other("missing")
    with pytest.raises(SqlError) as caught:
        await hook.run(f"SELECT *\n  FROM {missing}\n  WHERE 1 = 1")
    message = str(caught.value)
    assert "\n" not in message
    assert "db: 'SELECT *' failed: " in message
    assert missing in message  # the database's own message names the table
    assert caught.value.statement.startswith("SELECT *\n")


async def test_insert_rows_replace(db: Db) -> None:
    hook = await DbApiHook.for_connection(db.conn_id)
    await _table(hook, db)
    await hook.insert_rows(db.table, [(1, "a"), (2, "b")], ["id", "name"], commit_every=1)
    await hook.insert_rows(
        db.table, [(2, "B"), (3, "c")], ["id", "name"], replace=True, replace_index="id"
    )
    assert await db.raw(f"SELECT id, name FROM {db.table} ORDER BY id") == [
        (1, "a"),
        (2, "B"),
        (3, "c"),
    ]


async def test_wrong_connection_types_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOOP_CONN_WEB", "http://example.invalid")
    with pytest.raises(InvalidConnection, match="no SQL hook for connection type 'http'"):
        await DbApiHook.for_connection("web")
    monkeypatch.setenv("AIRLOOP_CONN_MY", "mysql://root@127.0.0.1:3306/test")
    with pytest.raises(InvalidConnection, match="'my' has conn_type 'mysql': PostgresHook"):
        await PostgresHook("my").get_first("SELECT 1")
    with pytest.raises(TypeError, match="unknown argument"):
        MySqlHook("my", poolsize=3)


async def test_an_unreachable_server_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRLOOP_CONN_NOWHERE", "postgres://root@127.0.0.1:1/test")
    with pytest.raises(SqlConnectionError, match=r"cannot connect to 'nowhere' \(postgres at "):
        await PostgresHook("nowhere").get_first("SELECT 1")
    monkeypatch.setenv("AIRLOOP_CONN_LITE", json.dumps({"conn_type": "sqlite", "host": ":memory:"}))
    with pytest.raises(InvalidConnection, match="in-memory sqlite"):
        await SqliteHook("lite").get_first("SELECT 1")


async def test_pool_is_shared_bounded_and_closed(db: Db, tmp_path: Path) -> None:
    """Within an engine's resources, 12 concurrent queries share at most pool_size
    connections, reused across hooks; closing the resources closes every one of them
    (the server no longer lists them)."""
    resources = Resources(Settings(home=tmp_path / "home", sql={"pool_size": 3}))
    token = current_resources.set(resources)
    try:
        await _table(await DbApiHook.for_connection(db.conn_id), db)
        id_sql = db.connection_id_sql if db.backend != "sqlite" else "SELECT 1"

        async def one() -> int:
            hook = await DbApiHook.for_connection(db.conn_id)  # a new hook each time
            row = await hook.get_first(id_sql)
            return int(row[0])

        ids = set(await asyncio.gather(*(one() for _ in range(12))))
        pools = await resources.get(RESOURCE_KEY, None)  # type: ignore[arg-type]
        (pool,) = pools.pools.values()
        assert pool.size == 3
        assert pool.opened <= 3
        assert pool.open_count == pool.opened
        if db.backend != "sqlite":
            assert 1 <= len(ids) <= 3
            assert await db.alive(ids) == ids
    finally:
        current_resources.reset(token)
        await resources.aclose()
    assert pool.open_count == 0
    if db.backend != "sqlite":
        assert await db.gone(ids) == set()
    token = current_resources.set(resources)
    try:
        hook = await DbApiHook.for_connection(db.conn_id)
        with pytest.raises(RuntimeError, match="resources are closed"):
            await hook.get_first("SELECT 1")
    finally:
        current_resources.reset(token)


async def test_outside_an_engine_each_call_closes_its_connection(server_db: Db) -> None:
    hook = await DbApiHook.for_connection(server_db.conn_id)
    first = (await hook.get_first(server_db.connection_id_sql))[0]
    second = (await hook.get_first(server_db.connection_id_sql))[0]
    assert first != second
    assert await server_db.gone({first, second}) == set()


async def test_a_connection_extra_sets_the_pool_size(
    server_db: Db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRLOOP_CONN_SIZED", server_db.uri + "?pool_size=1")
    resources = Resources(Settings(home=tmp_path / "home"))
    token = current_resources.set(resources)
    try:
        hook = await DbApiHook.for_connection("sized")
        ids = await asyncio.gather(*(hook.get_first(server_db.connection_id_sql) for _ in range(5)))
        assert len({row[0] for row in ids}) == 1
    finally:
        current_resources.reset(token)
        await resources.aclose()


# -- pure helpers ----------------------------------------------------------------------


def test_split_sql_keeps_quoted_semicolons() -> None:
    script = """
        INSERT INTO t VALUES ('a;b', "c;d");  -- one; two
        /* a block; comment */ SELECT $$x; y$$, $tag$ ; $tag$;
        ;
        -- only a comment;
    """
    assert split_sql(script) == [
        """INSERT INTO t VALUES ('a;b', "c;d")""",
        "-- one; two\n        /* a block; comment */ SELECT $$x; y$$, $tag$ ; $tag$",
    ]
    assert split_sql("SELECT 'it''s; fine'") == ["SELECT 'it''s; fine'"]
    assert split_sql(r"SELECT 'a\'; b'", backslash_escapes=True) == [r"SELECT 'a\'; b'"]
    mysql = {"dollar_quotes": False, "backslash_escapes": True, "hash_comments": True}
    assert split_sql("SELECT 1; # a; comment\nSELECT 2", **mysql) == [
        "SELECT 1",
        "# a; comment\nSELECT 2",
    ]
    assert split_sql("SELECT a$b$; SELECT 2") == ["SELECT a$b$", "SELECT 2"]


def test_airflow_parameter_styles_become_dollar_parameters() -> None:
    assert to_dollar_params("SELECT %s, '%s', %s", [1, 2]) == ("SELECT $1, '%s', $2", (1, 2))
    assert to_dollar_params("SELECT %(a)s, %(b)s, %(a)s, 5 %% 2", {"a": 1, "b": 2}) == (
        "SELECT $1, $2, $1, 5 % 2",
        [1, 2],
    )
    assert to_dollar_params("SELECT $1", (7,)) == ("SELECT $1", (7,))
    with pytest.raises(TypeError, match="2 %s placeholder"):
        to_dollar_params("SELECT %s, %s", [1])
    with pytest.raises(KeyError, match="'b'"):
        to_dollar_params("SELECT %(b)s", {"a": 1})


def test_json_safe_values() -> None:
    value = json_safe(
        [
            (
                decimal.Decimal("3"),
                decimal.Decimal("0.5"),
                decimal.Decimal("0.1000000000000000000001"),
                datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
                datetime.date(2026, 1, 2),
                datetime.timedelta(minutes=2),
                uuid.UUID(int=1),
                b"\x01\xff",
                float("nan"),
                {"k": (1, 2)},
            )
        ]
    )
    assert value == [
        [
            3,
            0.5,
            "0.1000000000000000000001",
            "2026-01-02T03:04:05+00:00",
            "2026-01-02",
            120.0,
            "00000000-0000-0000-0000-000000000001",
            "01ff",
            "nan",
            {"k": [1, 2]},
        ]
    ]
    json.dumps(value, allow_nan=False)


def test_connection_variables_are_not_reported_as_unknown_settings() -> None:
    from airloop.settings import unknown_variables

    assert (
        unknown_variables({"AIRLOOP_CONN_WAREHOUSE": "postgres://h/db", "AIRLOOP_VAR_X": "1"}) == []
    )
    assert unknown_variables({"AIRLOOP_SQL__POOL_SIZE": "3"}) == []


def test_the_hooks_import_without_the_optional_drivers() -> None:
    """asyncpg and asyncmy are extras: importing the SQL modules must not need them;
    using a hook whose driver is missing names the extra to install."""
    import subprocess
    import sys

    script = """
import asyncio, sys
sys.modules["asyncpg"] = None  # as if not installed
sys.modules["asyncmy"] = None
import airloop.hooks, airloop.operators, airloop.sensors
from airloop.hooks import PostgresHook
from airloop.hooks.sql import DriverMissing
import os
os.environ["AIRLOOP_CONN_PG"] = "postgres://root@127.0.0.1:5432/test"
try:
    asyncio.run(PostgresHook("pg").get_first("SELECT 1"))
except DriverMissing as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "PostgresHook needs the asyncpg driver: pip install 'airloop[postgres]'"
    )


async def test_a_pooled_connection_the_server_closed_is_replaced(
    server_db: Db, tmp_path: Path
) -> None:
    db = server_db
    resources = Resources(Settings(home=tmp_path / "home", sql={"pool_size": 1}))
    token = current_resources.set(resources)
    try:
        hook = await DbApiHook.for_connection(db.conn_id)
        (first,) = await hook.get_first(db.connection_id_sql)
        kill = (
            f"SELECT pg_terminate_backend({int(first)})"
            if db.backend == "postgres"
            else f"KILL {int(first)}"
        )
        await db.raw(kill)
        assert await db.gone({first}) == set()
        (second,) = await hook.get_first(db.connection_id_sql)
        assert second != first
    finally:
        current_resources.reset(token)
        await resources.aclose()
