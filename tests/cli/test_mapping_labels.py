"""``airloop run`` and ``airloop tasks states`` show mapped instances' map_index_template labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import airloop, query, write

pytestmark = pytest.mark.slow

DAG_FILE = """
from airloop import DAG, task

with DAG("labels_cli") as dag:

    @task
    def files() -> list[dict]:
        return [{"path": "a.csv"}, {"path": "broken.csv"}]

    @task(map_index_template="{{ task.op_kwargs['path'] }}")
    def load(path: str) -> str:
        if path.startswith("broken"):
            raise ValueError("cannot parse " + path)
        return path

    load.expand_kwargs(files())
"""


def table_rows(stdout: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


def test_labels_in_the_summary_the_states_table_and_the_database(tmp_path: Path) -> None:
    dag_file = write(tmp_path, "labels_cli.py", DAG_FILE)
    home = tmp_path / "home"
    ran = airloop("run", dag_file, "--run-id", "r1", home=home)
    assert ran.code == 1, ran.transcript
    assert "load[1] (broken.csv)" in ran.stdout, ran.transcript

    states = airloop("tasks", "states", "r1", home=home)
    assert states.code == 0, states.transcript
    rows = table_rows(states.stdout)
    assert "┃ label " in states.stdout, states.transcript
    assert [r[:4] for r in rows] == [
        ["files", "", "", "success"],
        ["load", "0", "a.csv", "success"],
        ["load", "1", "broken.csv", "failed"],
    ], states.transcript

    stored = query(
        home / "airloop.db",
        "SELECT map_index, rendered_map_index FROM task_instance WHERE task_id = 'load' "
        "ORDER BY map_index",
    )
    assert stored == [
        {"map_index": 0, "rendered_map_index": "a.csv"},
        {"map_index": 1, "rendered_map_index": "broken.csv"},
    ]
