"""Task groups end to end: group-prefixed task ids through real runs.

The same DAG file runs on the async executor and on the process executor, which ships
tasks by reference (DAG file + task id): the DAG rebuilt in the worker process must
find the prefixed ids, mapped ones included. ``airloop tasks test`` takes them too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airloop import DagRunState
from airloop.dagbag.loader import load_dag_file
from airloop.engine.engine import Engine
from airloop.settings import Settings

from .support import ti_rows, ti_states, xcom_map

DAG_FILE = """
from airloop import DAG, Label, TaskGroup, chain, task, task_group

with DAG("groups_run") as dag:

    @task
    def start() -> int:
        return 1

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def collect(values: list[int]) -> list[int]:
        return values

    @task
    def fail() -> None:
        raise RuntimeError("failing on purpose")

    @task_group
    def stage(x: int):
        with TaskGroup("inner"):
            doubled = add(x, x)
        return add(doubled, 100)

    s = start()
    with TaskGroup("fan", default_args={"retries": 0}) as fan:
        a = add.override(task_id="a")(s, 1)
        mapped = add.partial(y=10).expand(x=[1, 2, 3])
    out = stage(a)
    collect(mapped)
    end = add(out, 0)
    fan >> Label("after fan") >> end
    with TaskGroup("broken") as broken:
        chain(fail(), add.override(task_id="after")(1, 1))
    broken >> add.override(task_id="never")(0, 0)
"""

EXPECTED_STATES = {
    "start": "success",
    "fan.a": "success",
    "fan.add[0]": "success",
    "fan.add[1]": "success",
    "fan.add[2]": "success",
    "stage.inner.add": "success",
    "stage.add": "success",
    "collect": "success",
    "add": "success",
    "broken.fail": "failed",
    "broken.after": "upstream_failed",
    "never": "upstream_failed",
}


@pytest.fixture
def dag_file(tmp_path: Path) -> Path:
    path = tmp_path / "groups_run.py"
    path.write_text(DAG_FILE)
    return path


@pytest.mark.parametrize("executor", ["async", "process"])
async def test_nested_groups_run_with_prefixed_ids(
    dag_file: Path, tmp_path: Path, executor: str
) -> None:
    dag = load_dag_file(dag_file).dags["groups_run"]
    assert dag.get_task("add").upstream_task_ids == {
        "stage.add",
        "fan.a",
        "fan.add",
    }
    settings = Settings(
        home=tmp_path / "home",
        use_async=executor == "async",
        sync_executor="thread" if executor == "async" else "process",
        process_workers=1,
        shutdown_grace_seconds=5,
    )
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.FAILED
        assert await ti_states(engine, result.run_pk) == EXPECTED_STATES
        values = {k: json.loads(v) for k, v in (await xcom_map(engine, result.run_pk)).items()}
        rows = await ti_rows(engine, result.run_pk)
    assert values == {
        ("start", -1): 1,
        ("fan.a", -1): 2,
        ("fan.add", 0): 11,
        ("fan.add", 1): 12,
        ("fan.add", 2): 13,
        ("stage.inner.add", -1): 4,
        ("stage.add", -1): 104,
        ("collect", -1): [11, 12, 13],
        ("add", -1): 104,
    }
    ran = {row.executor for key, row in rows.items() if row.state in ("success", "failed")}
    assert ran == {"async" if executor == "async" else "process"}
    assert dag.get_edge_info("fan.a", "add") == {"label": "after fan"}


@pytest.mark.slow
def test_tasks_test_cli_takes_a_prefixed_id(dag_file: Path, tmp_path: Path) -> None:
    airloop = Path(sys.executable).parent / "airloop"
    done = subprocess.run(
        [
            str(airloop),
            "tasks",
            "test",
            str(dag_file),
            "groups_run",
            "stage.add",
            "--upstream",
            "stage.inner.add=4",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRLOOP_")},
            "AIRLOOP_HOME": str(tmp_path / "home"),
            "NO_COLOR": "1",
            "COLUMNS": "250",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "returned: 104" in done.stdout
