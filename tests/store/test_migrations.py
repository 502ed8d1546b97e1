"""The Alembic history creates exactly the schema the code queries."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from airloop.store.database import (
    alembic_head,
    create_engine,
    current_revision,
    head_revision,
    migrate,
)
from airloop.store.runs import Store
from airloop.store.schema import metadata

from .support import database_at


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert alembic_head() == head_revision()


async def test_migrations_match_the_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        assert await current_revision(engine) is None
        before, after = await migrate(engine)
        assert (before, after) == (None, head_revision())
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"dag_run", "task_instance", "xcom", "task_log", "alembic_version"} <= tables
        # Idempotent: a second migrate changes nothing.
        assert await migrate(engine) == (head_revision(), head_revision())
    finally:
        await engine.dispose()


async def test_store_open_migrates_an_empty_database_and_uses_wal(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'a.db'}")
    try:
        assert await current_revision(store.engine) == head_revision()
        async with store.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        assert mode == "wal"
    finally:
        await store.close()


async def test_store_open_without_auto_migrate_refuses_an_old_schema(tmp_path: Path) -> None:
    from airloop.store.database import DatabaseError

    with pytest.raises(DatabaseError, match="airloop db migrate"):
        await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", auto_migrate=False)


async def test_a_bad_url_is_a_clear_error() -> None:
    from airloop.store.database import DatabaseError

    with pytest.raises(DatabaseError, match="invalid database URL"):
        await Store.open("not a url")


async def test_an_older_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """The embedded database belongs to one installation: after an upgrade of airloop,
    'make demo' (or 'airloop run') keeps working on the file the old version wrote."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await database_at(url, "0001")
    store = await Store.open(url)
    try:
        assert await current_revision(store.engine) == head_revision()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_an_older_sqlite_database_is_left_alone_without_auto_migrate(
    tmp_path: Path,
) -> None:
    from airloop.store.database import DatabaseError

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await database_at(url, "0001")
    with pytest.raises(DatabaseError, match=r"schema is at 0001.*run 'airloop db migrate'"):
        await Store.open(url, auto_migrate=False)
    engine = create_engine(url)
    try:
        assert await current_revision(engine) == "0001"
    finally:
        await engine.dispose()


async def test_a_database_newer_than_this_airloop_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import text

    from airloop.store.database import DatabaseError

    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    store = await Store.open(url)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    await store.close()
    with pytest.raises(DatabaseError, match=r"schema is at 9999"):
        await Store.open(url)


async def test_a_new_database_created_directly_matches_the_migrations(tmp_path: Path) -> None:
    """Store.open creates an empty database with create_all + stamp; it must be exactly
    what replaying the migrations gives, and later migrations must apply on top."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}")
    try:
        assert await current_revision(store.engine) == head_revision()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        assert await migrate(store.engine) == (head_revision(), head_revision())
    finally:
        await store.close()


async def test_upgrading_sqlite_keeps_the_runs_and_their_rows(tmp_path: Path) -> None:
    """SQLite alters dag_run by copying it: the old table's drop must not cascade to the
    task instances, XComs and log rows (foreign keys are off while migrating)."""
    import sqlite3

    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    await database_at(url, "0002")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, params, "
            "created_at) VALUES ('d', 'r', 'manual', 'success', '2026-01-01 00:00:00.000000', "
            "'{}', '2026-01-01 00:00:00.000000')"
        )
        conn.execute(
            "INSERT INTO task_instance (dag_run_id, task_id, map_index, state, try_number, "
            "max_tries, pool, pool_slots, priority_weight) "
            "VALUES (1, 't', -1, 'success', 1, 1, 'default_pool', 1, 1)"
        )
        conn.execute(
            "INSERT INTO xcom (dag_run_id, task_id, map_index, key, value, size, created_at) "
            "VALUES (1, 't', -1, 'return_value', '1', 1, '2026-01-01 00:00:00.000000')"
        )
    store = await Store.open(url)
    try:
        assert await current_revision(store.engine) == head_revision()
        runs = await store.find_runs("r")
        assert [r.logical_date.year for r in runs if r.logical_date] == [2026]
        assert [ti.task_id for ti in await store.task_instances(runs[0].id)] == ["t"]
        assert [x.value for x in await store.xcom_values(runs[0].id)] == ["1"]
        # Foreign keys are on again for the store's connections.
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await store.close()
