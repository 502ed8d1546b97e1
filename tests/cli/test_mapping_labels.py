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


KWARGS_FILE = """
from airloop import DAG, task

with DAG("kw_cli") as dag:

    @task
    def items() -> list:
        return []

    @task
    def use(x: int) -> int:
        return x * 10

    listed = items()
    use.expand_kwargs(listed)
    use.override(task_id="use_mapped").expand_kwargs(listed.map(lambda v: v))
"""


def test_tasks_test_binds_expand_kwargs_and_names_a_bad_item(tmp_path: Path) -> None:
    dag_file = write(tmp_path, "kw_cli.py", KWARGS_FILE)
    home = tmp_path / "home"
    upstream = ("--upstream", 'items=[{"x": 4}, 5]')
    good = airloop(
        "tasks", "test", dag_file, "kw_cli", "use", "--map-index", "0", *upstream, home=home
    )
    assert good.code == 0, good.transcript
    assert "returned: 40" in good.stdout, good.transcript
    for task_id in ("use", "use_mapped"):
        bad = airloop(
            "tasks", "test", dag_file, "kw_cli", task_id, "--map-index", "1", *upstream, home=home
        )
        assert bad.code != 0, bad.transcript
        expected = f"task '{task_id}', map index 1: expand_kwargs() needs a dict, got int"
        assert expected in bad.transcript, bad.transcript
