"""The store on every backend: SQLite, PostgreSQL and MariaDB, one suite."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from airloop import DAG, DagRunState, task
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.exceptions import DatabaseError, RunExistsError, TransientDatabaseError
from airloop.settings import Settings
from airloop.store.database import create_engine, current_revision, head_revision, migrate
from airloop.store.records import (
    CheckpointRow,
    Expansion,
    NewTaskInstance,
    TIUpdate,
    WriteBatch,
    XComRow,
)
from airloop.store.runs import Store
from airloop.store.schema import metadata
from airloop.store.service import ServiceStore

from .support import database_at


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def test_migrations_and_direct_creation_give_the_same_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) is None
        assert await migrate(engine) == (None, head_revision())
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_an_older_server_schema_waits_for_airloop_db_migrate(
    server_database_url: str,
) -> None:
    """A shared server database is never upgraded by whichever process opens it first:
    Store.open refuses until 'airloop db migrate' ran, then opens it."""
    from airloop.store.database import DatabaseError

    await database_at(server_database_url, "0001")
    with pytest.raises(DatabaseError, match=r"schema is at 0001.*run 'airloop db migrate'"):
        await Store.open(server_database_url)
    engine = create_engine(server_database_url)
    try:
        assert await migrate(engine) == ("0001", head_revision())
    finally:
        await engine.dispose()
    store = await Store.open(server_database_url)
    await store.close()


async def test_store_round_trips_times_json_and_large_text(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        when = datetime(2026, 11, 25, 7, 1, 2, 345678, tzinfo=UTC)
        pk = await store.create_run(
            dag_id="d",
            run_id="r",
            run_type="manual",
            logical_date=when,
            params={"n": 3, "names": ["a", "é"], "nested": {"x": None}},
            task_instances=[NewTaskInstance(t, "default_pool", 1, 1, 2) for t in ("a", "m")],
        )
        big = json.dumps("x" * 900_000)  # MySQL's TEXT would stop at 64 KiB
        await store.write(
            WriteBatch(
                expansions=[Expansion(pk, "m", 3)],
                ti_updates=[TIUpdate(pk, "a", -1, TaskState.SUCCESS, 1, start_date=when)],
                xcoms=[XComRow(pk, "a", -1, "return_value", big)],
            )
        )
        await store.save_checkpoints(
            [CheckpointRow(pk, "m", 2, {"try_number": 1, "value": {"job": "j"}})]
        )
        (run,) = await store.find_runs("r", "d")
        assert run.logical_date == when  # aware UTC, microseconds kept
        assert run.params == {"n": 3, "names": ["a", "é"], "nested": {"x": None}}
        tis = {(t.task_id, t.map_index): t for t in await store.task_instances(pk)}
        assert sorted(tis) == [("a", -1), ("m", 0), ("m", 1), ("m", 2)]
        assert tis["a", -1].start_date == when
        assert tis["m", 2].checkpoint == {"try_number": 1, "value": {"job": "j"}}
        (xcom,) = await store.xcom_values(pk)
        assert len(xcom.value) == len(big)
    finally:
        await store.close()


async def test_an_end_to_end_run(database_url: str, tmp_path: Path) -> None:
    with DAG("e2e") as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task(retries=1, retry_delay=0.01)
        async def double(x: int, try_number: int) -> int:
            if x == 2 and try_number == 1:
                raise RuntimeError("first try fails")
            return 2 * x

        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        total(double.expand(x=numbers()))

    async with Engine(Settings(home=tmp_path, database_url=database_url)) as engine:
        result = await engine.run(dag, run_id="one")
        assert result.state is DagRunState.SUCCESS, result.failed
        values = {
            x.task_id: json.loads(x.value)
            for x in await engine.store.xcom_values(result.run_pk)
            if x.map_index < 0
        }
        assert values["total"] == 12
        rows = await engine.store.task_instances(result.run_pk)
        assert {r.task_id: r.try_number for r in rows if r.map_index == 1}["double"] == 2
        with pytest.raises(RunExistsError):
            await engine.run(dag, run_id="one")


async def _kill_other_connections(url: str) -> int:
    """From a second connection, drop every other connection to this database."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if url.startswith("postgresql"):
                result = await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                return len(result.all())
            ids = (
                (
                    await conn.execute(
                        text(
                            "SELECT id FROM information_schema.processlist "
                            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                        )
                    )
                )
                .scalars()
                .all()
            )
            for connection_id in ids:
                await conn.execute(text(f"KILL {int(connection_id)}"))
            return len(ids)
    finally:
        await engine.dispose()


async def test_the_run_survives_its_connections_being_killed(
    server_database_url: str, tmp_path: Path
) -> None:
    database_url = server_database_url
    gate = asyncio.Event()

    with DAG("resilient") as dag:

        @task
        async def first() -> int:
            await gate.wait()
            return 1

        @task
        async def second(x: int) -> int:
            return x + 1

        @task
        def third(x: int) -> int:
            return x + 1

        third(second(first()))

    async with Engine(
        Settings(home=tmp_path, database_url=database_url, min_tick_interval=0)
    ) as engine:
        run = await engine.start_run(dag)
        # The scheduler's connections exist (the run and its first tick were written).
        await asyncio.sleep(0.2)
        killed = await _kill_other_connections(database_url)
        assert killed >= 1
        gate.set()
        result = await asyncio.wait_for(asyncio.shield(run.done), 60)
        rows = await engine.store.task_instances(result.run_pk)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert {r.state for r in rows} == {"success"}


async def test_driver_errors_leave_the_store_as_airloops_own(database_url: str) -> None:
    """A run that exists is RunExistsError; a refused write is a DatabaseError the
    scheduler must not retry (not a TransientDatabaseError); no driver exception leaks."""
    store = await Store.open(database_url)
    try:
        service = ServiceStore(store)
        when = datetime(2026, 1, 1, tzinfo=UTC)
        pk = await service.queue_run("d", "r", {}, when)
        with pytest.raises(RunExistsError, match="already has a run 'r'"):
            await service.queue_run("d", "r", {}, when)
        with pytest.raises(RunExistsError):
            await store.create_run(
                dag_id="d",
                run_id="r",
                run_type="manual",
                logical_date=when,
                params={},
                task_instances=[],
            )
        twice = XComRow(pk, "a", -1, "return_value", "1")
        with pytest.raises(DatabaseError) as refused:
            await store.write(WriteBatch(xcoms=[twice, twice]))
        assert not isinstance(refused.value, TransientDatabaseError)
    finally:
        await store.close()


async def test_a_value_the_database_refuses_is_not_retried_as_transient(
    server_database_url: str,
) -> None:
    """A value too long for its column fails the same way on every retry: it is a
    DatabaseError (the scheduler stops on it), not a TransientDatabaseError it would
    retry forever while every run stalls."""
    store = await Store.open(server_database_url)
    try:
        pk = await store.create_run(
            dag_id="d",
            run_id="r",
            run_type="manual",
            logical_date=datetime(2026, 1, 1, tzinfo=UTC),
            params={},
            task_instances=[NewTaskInstance("t", "default_pool", 1, 1, 1)],
        )
        too_long = TIUpdate(pk, "t", -1, TaskState.RUNNING, 1, executor="x" * 500)
        with pytest.raises(DatabaseError) as refused:
            await store.write(WriteBatch(ti_updates=[too_long]))
        assert not isinstance(refused.value, TransientDatabaseError)
    finally:
        await store.close()
