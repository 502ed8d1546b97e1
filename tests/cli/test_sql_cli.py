"""An SQL task that fails, run from the CLI: the statement's first line and the
database's message, no traceback (the traceback is in the task's log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import airloop, write

pytestmark = pytest.mark.slow

SQL_DAG = """
from airloop import DAG
from airloop.operators import SQLExecuteQueryOperator

with DAG("sql_cli", schedule=None) as dag:
    SQLExecuteQueryOperator(task_id="make", conn_id="lite", sql="CREATE TABLE t (x INTEGER)")
    SQLExecuteQueryOperator(
        task_id="broken", conn_id="lite", sql="SELECT x\\nFROM missing_table\\nWHERE x > 1"
    )
"""


def test_a_failed_statement_is_one_line_without_traceback(tmp_path: Path) -> None:
    dag_file = write(tmp_path, "sql_dag.py", SQL_DAG)
    conn = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "data.db")})
    result = airloop("run", dag_file, home=tmp_path / "home", env={"AIRLOOP_CONN_LITE": conn})
    assert result.code == 1, result.transcript
    output = result.stdout + result.stderr
    assert "SqlError: lite: 'SELECT x' failed: no such table: missing_table" in output, (
        result.transcript
    )
    assert "Traceback" not in output, result.transcript
