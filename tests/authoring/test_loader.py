"""Loading DAG files: errors name the file, the line and the cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from airloop.dagbag.loader import discover, load_dag_file, pick_dag
from airloop.exceptions import DagFileError

GOOD = """
from airloop import DAG, task

with DAG("good") as dag:
    @task
    def a() -> int:
        return 1
    a()
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_good_file(tmp_path: Path) -> None:
    loaded = load_dag_file(write(tmp_path, "good.py", GOOD))
    assert list(loaded.dags) == ["good"]
    assert pick_dag(loaded, None).dag_id == "good"


@pytest.mark.parametrize(
    ("text", "line", "cause"),
    [
        ("x = 1\ndef broken(:\n", 2, "SyntaxError"),
        ("import os\nimport airloop_no_such_module\n", 2, "ModuleNotFoundError"),
        ("\n\nraise RuntimeError('boom at import')\n", 3, "RuntimeError: boom at import"),
        (
            "from airloop import DAG, BaseOperator\n"
            "with DAG('d'):\n"
            "    BaseOperator(task_id='a')\n"
            "    BaseOperator(task_id='a')\n",
            4,
            "DuplicateTaskIdError: DAG 'd' already has a task with id 'a'",
        ),
        (
            "from airloop import DAG, BaseOperator\n"
            "with DAG('d') as dag:\n"
            "    a = BaseOperator(task_id='a')\n"
            "    b = BaseOperator(task_id='b')\n"
            "    a >> b >> a\n",
            2,
            "has a cycle: a -> b -> a",
        ),
    ],
)
def test_errors_name_file_line_and_cause(tmp_path: Path, text: str, line: int, cause: str) -> None:
    path = write(tmp_path, "bad.py", text)
    with pytest.raises(DagFileError) as info:
        load_dag_file(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert cause in str(info.value)


def test_pick_dag_errors(tmp_path: Path) -> None:
    two = write(
        tmp_path,
        "two.py",
        "from airloop import DAG\nwith DAG('x') as x: pass\nwith DAG('y') as y: pass\n",
    )
    loaded = load_dag_file(two)
    with pytest.raises(DagFileError, match="several DAGs"):
        pick_dag(loaded, None)
    with pytest.raises(DagFileError, match="has no DAG 'z'"):
        pick_dag(loaded, "z")
    assert pick_dag(loaded, "y").dag_id == "y"
    empty = load_dag_file(write(tmp_path, "empty.py", "x = 1\n"))
    with pytest.raises(DagFileError, match="no DAG found"):
        pick_dag(empty, None)
    with pytest.raises(DagFileError, match="no such file"):
        load_dag_file(tmp_path / "missing.py")


def test_discover_skips_hidden_and_private(tmp_path: Path) -> None:
    write(tmp_path, "a.py", GOOD)
    write(tmp_path, "sub/b.py", GOOD)
    write(tmp_path, "_helpers.py", "")
    write(tmp_path, ".hidden/c.py", GOOD)
    write(tmp_path, "notes.txt", "")
    assert [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)] == ["a.py", "sub/b.py"]


def test_every_dag_built_while_importing_is_loaded(tmp_path: Path) -> None:
    """Not only module globals: DAGs made in a loop or a factory are loaded too (as in Airflow)."""
    path = write(
        tmp_path,
        "loop.py",
        "from airloop import DAG, BaseOperator\n"
        "for name in ('a', 'b', 'c'):\n"
        "    with DAG(f'loop_{name}'):\n"
        "        BaseOperator(task_id='t')\n"
        "def make(dag_id):\n"
        "    dag = DAG(dag_id)\n"
        "    BaseOperator(task_id='t', dag=dag)\n"
        "    return dag\n"
        "made = {i: make(f'made_{i}') for i in range(2)}\n"
        "glob = DAG('glob')\n",
    )
    loaded = load_dag_file(path)
    assert list(loaded.dags) == ["loop_a", "loop_b", "loop_c", "made_0", "made_1", "glob"]
    assert [t.task_id for t in loaded.dags["loop_b"].tasks] == ["t"]


def test_same_dag_id_twice_in_one_file_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.py",
        "from airloop import DAG\n"
        "for name in ('x', 'y', 'x'):\n"
        "    with DAG(name):\n"
        "        pass\n",
    )
    with pytest.raises(DagFileError) as info:
        load_dag_file(path)
    assert str(info.value) == f"{path}:3: two DAGs share the id 'x' (both made at line 3)"
    path = write(tmp_path, "dup2.py", "from airloop import DAG\nDAG('x')\n\nDAG('x')\n")
    with pytest.raises(DagFileError) as info:
        load_dag_file(path)
    assert str(info.value) == f"{path}:4: two DAGs share the id 'x' (made at lines 2 and 4)"


def test_auto_register_false_loads_only_module_globals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "manual.py",
        "from airloop import DAG\n"
        "with DAG('hidden', auto_register=False):\n"
        "    pass\n"
        "shown = DAG('shown', auto_register=False)\n",
    )
    assert list(load_dag_file(path).dags) == ["shown"]
