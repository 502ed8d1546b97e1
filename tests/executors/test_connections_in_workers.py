"""Variables and connections in tasks on the process and Dask executors: each worker
gets the scheduler's settings (database, fernet key) and looks up with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airloop.connections import Connection
from airloop.connections.crypto import generate_key
from airloop.connections.metastore import MetastoreSource
from airloop.core.states import DagRunState
from airloop.dagbag.loader import load_dag_file
from airloop.engine.engine import Engine

from .conftest import executor_settings

DAG_FILE = """
from airloop import DAG, BaseOperator, Variable, task
from airloop.hooks import BaseHook


class Echo(BaseOperator):
    template_fields = ("text",)

    def __init__(self, *, text, **kwargs):
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context):
        return self.text


with DAG("secrets_in_workers") as dag:
    echo = Echo(task_id="echo", text="{{ var.value.table }}@{{ conn.db.host }}")

    @task
    def read() -> list:
        return [Variable.get("table"), BaseHook.get_connection("db").password]

    echo >> read()
"""


@pytest.mark.parametrize("executor", ["process", "dask"])
async def test_workers_read_encrypted_secrets(executor: str, tmp_path: Path) -> None:
    settings = executor_settings(executor, tmp_path).model_copy(
        update={"fernet_key": generate_key(), "process_workers": 1}
    )
    db = MetastoreSource(settings.database_url, settings.fernet_key)
    await db.add_connections([Connection("db", host="db.local", password="pw")])
    await db.set_variables([("table", "events", None)])
    await db.aclose()
    path = tmp_path / "secrets_dag.py"
    path.write_text(DAG_FILE)
    dag = load_dag_file(path).dags["secrets_in_workers"]
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        rows = await engine.store.xcom_values(result.run_pk)
    values = {r.task_id: json.loads(r.value) for r in rows}
    assert values == {"echo": "events@db.local", "read": ["events", "pw"]}


ENV_DAG_FILE = """
from airloop import DAG, Variable, task
from airloop.hooks import BaseHook

with DAG("env_in_workers") as dag:
    @task
    def read() -> list:
        return [Variable.get("late_var"), BaseHook.get_connection("late_conn").host]

    read()
"""


@pytest.mark.parametrize("executor", ["process", "dask"])
async def test_workers_see_the_schedulers_environment_set_after_they_started(
    executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AIRLOOP_CONN_* / AIRLOOP_VAR_* set in the scheduler's process after its workers
    (or the forkserver) started still reach the task: shipped with it, so a task finds
    the same connections on every executor."""
    settings = executor_settings(executor, tmp_path).model_copy(update={"process_workers": 1})
    path = tmp_path / "env_dag.py"
    path.write_text(ENV_DAG_FILE)
    dag = load_dag_file(path).dags["env_in_workers"]
    async with Engine(settings) as engine:
        first = await engine.run(dag)  # workers are up, without the variables
        assert first.state is DagRunState.FAILED
        monkeypatch.setenv("AIRLOOP_VAR_LATE_VAR", "late")
        monkeypatch.setenv("AIRLOOP_CONN_LATE_CONN", "http://late.example")
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        rows = await engine.store.xcom_values(result.run_pk)
    assert {r.task_id: json.loads(r.value) for r in rows} == {"read": ["late", "late.example"]}
