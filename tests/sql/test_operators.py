"""The SQL operators and SqlSensor in real DAG runs (an Engine on a throwaway store)
against PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError
from airloop.operators import (
    SQLCheckOperator,
    SQLExecuteQueryOperator,
    SQLValueCheckOperator,
)
from airloop.sensors import SqlSensor
from airloop.settings import Settings

from .dbs import Db


async def xcoms(engine: Engine, run_pk: int) -> dict[str, Any]:
    rows = await engine.store.xcom_values(run_pk)
    return {r.task_id: json.loads(r.value) for r in rows if r.key == "return_value"}


async def test_execute_query_results_as_xcom(engine: Engine, db: Db, tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "count.sql").write_text(
        "SELECT count(*) AS n, {{ params.extra }} AS extra FROM " + db.table + "\n"
    )
    with DAG(
        f"sql_xcom_{db.backend}",
        schedule=None,
        params={"extra": 40},
        template_searchpath=[str(tmp_path / "tpl")],
    ) as dag:
        create = SQLExecuteQueryOperator(
            task_id="create",
            conn_id="db",
            sql=[
                f"CREATE TABLE {db.table} (id INTEGER PRIMARY KEY, name VARCHAR(40), "
                "amount NUMERIC(10, 2))",
                f"INSERT INTO {db.table} VALUES (1, 'a', 1.50)",
            ],
        )
        insert = SQLExecuteQueryOperator(
            task_id="insert",
            conn_id="db",
            # several statements, each given the same parameters (as in Airflow)
            sql=f"INSERT INTO {db.table} VALUES ({db.ph}, {db.ph}, 2.25);\n"
            f"DELETE FROM {db.table} WHERE id = {db.ph} + 100 AND name = {db.ph}",
            parameters=[2, "b{{ params.extra }}"],
        )
        select = SQLExecuteQueryOperator(
            task_id="select",
            conn_id="db",
            sql=f"SELECT id, name, amount FROM {db.table} WHERE id >= {db.named('low')} ORDER BY id",
            parameters={"low": 1},
            show_return_value_in_logs=True,
        )
        counted = SQLExecuteQueryOperator(task_id="counted", conn_id="db", sql="count.sql")
        every = SQLExecuteQueryOperator(
            task_id="every",
            conn_id="db",
            sql=f"SELECT 1; SELECT count(*) FROM {db.table}",
            return_last=False,
        )
        quiet = SQLExecuteQueryOperator(
            task_id="quiet", conn_id="db", sql=f"SELECT id FROM {db.table}", do_xcom_push=False
        )
        create >> insert >> [select, counted, every, quiet]
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    values = await xcoms(engine, result.run_pk)
    assert values["create"] == [None, None]  # a list: one result per statement, no rows
    assert "insert" not in values  # None (the last statement returned no rows): no XCom
    assert values["select"] == [[1, "a", 1.5], [2, "b40", 2.25]]
    assert values["counted"] == [[2, 40]]
    assert values["every"] == [[[1]], [[2]]]
    assert "quiet" not in values


async def test_row_limit_fails_the_task_naming_the_count(db: Db, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", sql={"xcom_max_rows": 2})
    with DAG(f"sql_limit_{db.backend}", schedule=None) as dag:
        create = SQLExecuteQueryOperator(
            task_id="create",
            conn_id="db",
            sql=f"CREATE TABLE {db.table} (id INTEGER); "
            f"INSERT INTO {db.table} VALUES (1); INSERT INTO {db.table} VALUES (2); "
            f"INSERT INTO {db.table} VALUES (3)",
        )
        create >> [
            SQLExecuteQueryOperator(
                task_id="over_setting", conn_id="db", sql=f"SELECT id FROM {db.table}"
            ),
            SQLExecuteQueryOperator(
                task_id="at_argument",
                conn_id="db",
                sql=f"SELECT id FROM {db.table} ORDER BY id",
                max_xcom_rows=3,
            ),
            SQLExecuteQueryOperator(
                task_id="over_argument",
                conn_id="db",
                sql=f"SELECT id FROM {db.table} WHERE id < 3",
                max_xcom_rows=1,
                retries=2,
            ),
        ]
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        values = await xcoms(engine, result.run_pk)
        rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    failed = dict(result.failed)
    assert set(failed) == {"over_setting", "over_argument"}
    assert "returned 3 rows, more than max_xcom_rows=2" in failed["over_setting"]
    assert "returned 2 rows, more than max_xcom_rows=1" in failed["over_argument"]
    assert rows["over_argument"].try_number == 1  # no retry: it would fail the same way
    assert values["at_argument"] == [[1], [2], [3]]


async def test_an_sql_error_fails_the_task_with_one_line(engine: Engine, db: Db) -> None:
    missing = db.other("missing")
    with DAG(f"sql_error_{db.backend}", schedule=None) as dag:
        SQLExecuteQueryOperator(
            task_id="bad", conn_id="db", sql=f"SELECT name\nFROM {missing}\nWHERE 1 = 1"
        )
        SQLExecuteQueryOperator(
            task_id="no_retry",
            conn_id="db",
            sql=f"DELETE FROM {missing}",
            retry_on_failure=False,
            retries=3,
        )
    result = await engine.run(dag)
    failed = dict(result.failed)
    assert failed["bad"].startswith("SqlError: db: 'SELECT name' failed: ")
    assert missing in failed["bad"]
    assert "(retry_on_failure=False)" in failed["no_retry"]


async def test_check_operators(engine: Engine, db: Db) -> None:
    with DAG(f"sql_checks_{db.backend}", schedule=None) as dag:
        SQLCheckOperator(task_id="ok", conn_id="db", sql="SELECT 1, 'a', 2 > 1")
        SQLCheckOperator(task_id="falsy", conn_id="db", sql="SELECT 1, 0, 'x'")
        SQLCheckOperator(
            task_id="empty",
            conn_id="db",
            sql=f"SELECT 1 FROM (SELECT 1 AS x) AS s WHERE x > {db.ph}",
            parameters=[5],
        )
        SQLValueCheckOperator(
            task_id="value_ok", conn_id="db", sql="SELECT 98", pass_value=100, tolerance=0.05
        )
        SQLValueCheckOperator(
            task_id="value_far", conn_id="db", sql="SELECT 90", pass_value=100, tolerance=0.05
        )
        SQLValueCheckOperator(
            task_id="value_text", conn_id="db", sql="SELECT 'abc'", pass_value="{{ 'ab' ~ 'c' }}"
        )
        SQLValueCheckOperator(
            task_id="value_exact", conn_id="db", sql="SELECT 3, 3.0", pass_value="3"
        )
    result = await engine.run(dag)
    failed = dict(result.failed)
    assert set(failed) == {"falsy", "empty", "value_far"}
    assert failed["falsy"].startswith("SqlCheckFailed: check failed: \"SELECT 1, 0, 'x'\"")
    assert "returned [1, 0, 'x']" in failed["falsy"]
    assert "column(s) 2" in failed["falsy"]
    assert "returned no row" in failed["empty"]
    assert "returned [90], expected 100 (tolerance 0.05)" in failed["value_far"]


async def test_a_failed_check_is_not_retried_with_retry_on_failure_false(
    engine: Engine, db: Db
) -> None:
    # Airflow: retry_on_failure=False makes a failed check fail without retry.
    with DAG(f"sql_check_no_retry_{db.backend}", schedule=None) as dag:
        SQLCheckOperator(
            task_id="falsy",
            conn_id="db",
            sql="SELECT 0",
            retry_on_failure=False,
            retries=2,
            retry_delay=0,
        )
        SQLValueCheckOperator(
            task_id="value_far",
            conn_id="db",
            sql="SELECT 90",
            pass_value=100,
            retry_on_failure=False,
            retries=2,
            retry_delay=0,
        )
    result = await engine.run(dag)
    rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    failed = dict(result.failed)
    assert set(failed) == {"falsy", "value_far"}
    assert "(retry_on_failure=False)" in failed["falsy"]
    assert rows["falsy"].try_number == 1
    assert rows["value_far"].try_number == 1


def test_bad_arguments_are_rejected_when_the_dag_is_written() -> None:
    with DAG("sql_bad_args", schedule=None):
        with pytest.raises(DagDefinitionError, match="conn_id is required"):
            SQLExecuteQueryOperator(task_id="a", sql="SELECT 1")
        with pytest.raises(DagDefinitionError, match="unknown hook_params pool"):
            SQLExecuteQueryOperator(
                task_id="b", conn_id="x", sql="SELECT 1", hook_params={"pool": 1}
            )
        with pytest.raises(DagDefinitionError, match="tolerance must be a number"):
            SQLValueCheckOperator(
                task_id="c", conn_id="x", sql="SELECT 1", pass_value=1, tolerance="lots"
            )
        with pytest.raises(DagDefinitionError, match="failure must be callable"):
            SqlSensor(task_id="d", conn_id="x", sql="SELECT 1", failure=True)
        with pytest.raises(DagDefinitionError, match="sql is empty"):
            SQLCheckOperator(task_id="e", conn_id="x", sql="  ")


async def test_sensor_turns_true_after_a_row_appears(engine: Engine, db: Db) -> None:
    seen: list[Any] = []

    def success(value: Any) -> bool:
        seen.append(value)
        return bool(value)

    await db.raw(f"CREATE TABLE {db.table} (id INTEGER)")
    with DAG(f"sql_sensor_{db.backend}", schedule=None) as dag:
        wait = SqlSensor(
            task_id="wait",
            conn_id="db",
            sql=f"SELECT count(*) FROM {db.table} WHERE id > {db.ph}",
            parameters=[0],
            success=success,
            poke_interval=0.05,
            timeout=60,
        )

        @task
        async def add_row() -> None:
            # Until the sensor has looked (and found nothing) at least once; a list, not an
            # asyncio.Event: on the thread executor the two tasks run on different loops.
            while not seen:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await asyncio.sleep(0)
            from airloop.hooks import DbApiHook

            hook = await DbApiHook.for_connection("db")
            await hook.run(f"INSERT INTO {db.table} VALUES (7)")

        added = add_row()
        del added, wait
    result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert seen[0] == 0
    assert seen[-1] == 1


async def test_sensor_failure_and_fail_on_empty(engine: Engine, db: Db) -> None:
    with DAG(f"sql_sensor_fail_{db.backend}", schedule=None) as dag:
        SqlSensor(
            task_id="criterion",
            conn_id="db",
            sql="SELECT 'broken'",
            failure=lambda v: v == "broken",
            poke_interval=0.01,
        )
        SqlSensor(
            task_id="empty",
            conn_id="db",
            sql="SELECT 1 FROM (SELECT 1 AS x) AS s WHERE x = 2",
            fail_on_empty=True,
            poke_interval=0.01,
        )
        SqlSensor(
            task_id="selected",
            conn_id="db",
            sql="SELECT 0, 'yes'",
            selector=lambda row: row[1],
            poke_interval=0.01,
        )
    result = await engine.run(dag)
    failed = dict(result.failed)
    assert set(failed) == {"criterion", "empty"}
    assert "failure criterion met: failure('broken') returned true" in failed["criterion"]
    assert "returned no row (fail_on_empty=True)" in failed["empty"]
