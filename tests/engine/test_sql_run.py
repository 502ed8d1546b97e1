"""SQL tasks in real DAG runs on PostgreSQL and MariaDB: on the default executor (both
CI passes: the async executor, then the thread executor, where each call opens and
closes a connection of its own), and the engine's shared pool (reuse, bound, every
connection closed when the engine stops: the server no longer lists them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.operators import SQLCheckOperator, SQLExecuteQueryOperator
from airloop.sensors import SqlSensor
from airloop.settings import Settings
from sql.dbs import SERVERS, Db, open_db

from .support import xcom_map


@pytest_asyncio.fixture(params=SERVERS)
async def server_db(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Db]:
    async for opened in open_db(request.param, monkeypatch, tmp_path):
        yield opened


async def test_an_sql_pipeline_runs(engine: Engine, server_db: Db) -> None:
    db = server_db
    with DAG(f"sql_pipeline_{db.backend}", schedule=None) as dag:
        load = SQLExecuteQueryOperator(
            task_id="load",
            conn_id="db",
            sql=f"CREATE TABLE {db.table} (id INTEGER, amount INTEGER);"
            f"INSERT INTO {db.table} VALUES (1, 10), (2, 32)",
        )
        ready = SqlSensor(
            task_id="ready",
            conn_id="db",
            sql=f"SELECT count(*) FROM {db.table}",
            poke_interval=0.05,
        )
        total = SQLExecuteQueryOperator(
            task_id="total",
            conn_id="db",
            sql=f"SELECT sum(amount) FROM {db.table} WHERE id <= {db.ph}",
            parameters=[2],
        )
        check = SQLCheckOperator(
            task_id="check", conn_id="db", sql=f"SELECT count(*) FROM {db.table}"
        )
        load >> ready >> total >> check
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcom_map(engine, result.run_pk)
    assert json.loads(values[("total", -1)]) == [[42]]


@pytest.mark.async_executor
async def test_the_pool_is_shared_and_closed_with_the_engine(server_db: Db, tmp_path: Path) -> None:
    db = server_db
    settings = Settings(home=tmp_path / "home", sql={"pool_size": 2})
    with DAG(f"sql_pool_{db.backend}", schedule=None) as dag:
        for i in range(8):
            SQLExecuteQueryOperator(task_id=f"q{i}", conn_id="db", sql=db.connection_id_sql)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await xcom_map(engine, result.run_pk)
        ids = {json.loads(v)[0][0] for v in values.values()}
        assert 1 <= len(ids) <= 2  # 8 tasks, at most pool_size connections
        assert await db.alive(ids) == ids  # kept open for the next task
    assert await db.gone(ids) == set()  # the engine closed them when it stopped


async def test_a_timed_out_query_does_not_poison_the_pool(engine: Engine, server_db: Db) -> None:
    db = server_db
    sleep = "SELECT pg_sleep(30)" if db.backend == "postgres" else "SELECT SLEEP(30)"
    with DAG(f"sql_timeout_{db.backend}", schedule=None) as dag:
        slow = SQLExecuteQueryOperator(
            task_id="slow",
            conn_id="db",
            sql=sleep,
            execution_timeout=0.5,
            hook_params={"pool_size": 1},
        )
        after = SQLExecuteQueryOperator(
            task_id="after", conn_id="db", sql="SELECT 42", trigger_rule="all_done"
        )
        slow >> after
    result = await engine.run(dag)
    failed = dict(result.failed)
    assert set(failed) == {"slow"}
    assert "execution_timeout" in failed["slow"]
    values = await xcom_map(engine, result.run_pk)
    assert json.loads(values[("after", -1)]) == [[42]]


async def test_a_mapped_sql_task(engine: Engine, server_db: Db) -> None:
    db = server_db
    with DAG(f"sql_mapped_{db.backend}", schedule=None) as dag:
        SQLExecuteQueryOperator.partial(task_id="each", conn_id="db").expand(
            sql=["SELECT 1", "SELECT 2", "SELECT 3"]
        )
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcom_map(engine, result.run_pk)
    assert [json.loads(values[("each", i)]) for i in range(3)] == [[[1]], [[2]], [[3]]]


async def test_a_sync_task_uses_a_hook_through_asyncio_run(engine: Engine, server_db: Db) -> None:
    """Off the loop (a worker thread), asyncio.run gives the hook a loop of its own:
    a connection of its own for the call, closed at its end."""
    db = server_db

    with DAG(f"sql_sync_{db.backend}", schedule=None) as dag:

        @task
        def sync_query() -> list[list[int]]:
            import asyncio

            from airloop.hooks import DbApiHook

            async def query() -> list[list[int]]:
                hook = await DbApiHook.for_connection("db")
                rows = await hook.get_records(f"SELECT 6 * {db.ph}", [7])
                return [list(r) for r in rows]

            return asyncio.run(query())

        sync_query()
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcom_map(engine, result.run_pk)
    assert json.loads(values[("sync_query", -1)]) == [[42]]


async def test_a_connection_from_the_encrypted_table(server_db: Db, tmp_path: Path) -> None:
    """The same SQL task with its connection in the metadata database (Fernet-encrypted
    extra) instead of the environment: looked up by the run, never read in clear."""
    from airloop import Connection
    from airloop.connections.crypto import generate_key
    from airloop.connections.metastore import MetastoreSource

    db = server_db
    settings = Settings(home=tmp_path / "home", fernet_key=generate_key())
    stored = Connection.parse("stored_db", db.uri)
    stored = Connection(
        "stored_db",
        conn_type=stored.conn_type,
        host=stored.host,
        schema=stored.schema,
        login=stored.login,
        port=stored.port,
        extra=json.dumps({**stored.extra_dejson, "note": "from the table"}),
    )
    with DAG(f"sql_stored_conn_{db.backend}", schedule=None) as dag:
        SQLExecuteQueryOperator(task_id="q", conn_id="stored_db", sql="SELECT 40 + 2")
    async with Engine(settings) as engine:
        source = MetastoreSource(settings.database_url, settings.fernet_key)
        try:
            await source.add_connections([stored])
        finally:
            await source.aclose()
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await xcom_map(engine, result.run_pk)
    assert json.loads(values[("q", -1)]) == [[42]]

    def database_bytes() -> bytes:  # the file and its write-ahead log, if any
        return b"".join(p.read_bytes() for p in settings.home.glob("airloop.db*"))

    raw = await asyncio.to_thread(database_bytes)
    assert b"sql_stored_conn" in raw  # the run is in these files ...
    assert b"from the table" not in raw  # ... and the extra only encrypted
