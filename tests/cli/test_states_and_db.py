"""``airloop tasks states`` after real runs; ``airloop db migrate|check``; ``--version``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airloop import __version__

from .support import Call, CliResult, airloop, dag_runs, query, run_many, write

pytestmark = pytest.mark.slow

DAG_FILE = """
from airloop import DAG, Param, task

with DAG("states_cli", params={"fail": Param(False, type=bool)}) as dag:

    @task
    def numbers() -> list[int]:
        return [1, 2]

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def check(values: list[int], params: dict) -> int:
        if params["fail"]:
            raise ValueError("asked to fail")
        return sum(values)

    check(square.expand(x=numbers()))
"""


def table_rows(stdout: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A DAG file and the AIRLOOP_HOME of two runs of it: 'first' failed, 'second' succeeded."""
    base = tmp_path_factory.mktemp("states")
    dag_file = write(base, "states_cli.py", DAG_FILE)
    home = base / "home"
    first = airloop("run", dag_file, "--run-id", "first", "--param", "fail=true", home=home)
    assert first.code == 1, first.transcript
    second = airloop("run", dag_file, "--run-id", "second", home=home)
    assert second.code == 0, second.transcript
    return dag_file, home


@pytest.fixture(scope="module")
def states(two_runs: tuple[Path, Path]) -> dict[str, CliResult]:
    _, home = two_runs
    return run_many(
        {
            "latest": Call(("tasks", "states", "latest"), home),
            "first": Call(("tasks", "states", "first"), home),
            "first_of_dag": Call(("tasks", "states", "first", "--dag-id", "states_cli"), home),
            "unknown": Call(("tasks", "states", "no-such-run"), home),
            "unknown_dag": Call(("tasks", "states", "first", "--dag-id", "other"), home),
        }
    )


def test_states_latest_shows_the_last_run(states: dict[str, CliResult]) -> None:
    result = states["latest"]
    assert result.code == 0, result.transcript
    header = result.stdout.splitlines()[0]
    assert re.match(r"states_cli/second\s+success\s+started \d{4}-\d\d-\d\d", header), header
    rows = table_rows(result.stdout)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("numbers", "", "success", "1"),
        ("square", "0", "success", "1"),
        ("square", "1", "success", "1"),
        ("check", "", "success", "1"),
    ], result.transcript


def test_states_of_an_explicit_run_id(states: dict[str, CliResult]) -> None:
    for name in ("first", "first_of_dag"):
        result = states[name]
        assert result.code == 0, result.transcript
        assert result.stdout.startswith("states_cli/first  failed"), result.transcript
        rows = {(r[0], r[1]): r for r in table_rows(result.stdout)}
        assert rows["check", ""][2] == "failed"
        assert rows["check", ""][6] == "ValueError: asked to fail"
        assert rows["square", "1"][2] == "success"


def test_states_of_an_unknown_run_id(states: dict[str, CliResult]) -> None:
    for name, needle in (("unknown", "'no-such-run'"), ("unknown_dag", "'other'")):
        result = states[name]
        assert result.code == 2, result.transcript
        assert len(result.err_lines) == 1, result.transcript
        assert needle in result.err_lines[0]


def test_run_id_already_used_is_bad_input(two_runs: tuple[Path, Path]) -> None:
    dag_file, home = two_runs
    result = airloop("run", dag_file, "--run-id", "first", home=home)
    assert [r["run_id"] for r in dag_runs(home / "airloop.db")] == ["first", "second"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert "'first'" in result.err_lines[0], result.transcript


def test_db_migrate_is_idempotent_and_check_passes(tmp_path: Path, home: Path) -> None:
    fresh_home = tmp_path / "fresh"
    first_round = run_many(
        {
            "migrate": Call(("db", "migrate"), home),
            "check_fresh": Call(("db", "check"), fresh_home),
            "version": Call(("--version",), fresh_home),
        }
    )
    fresh = first_round["check_fresh"]
    assert fresh.code == 1, fresh.transcript  # an empty database needs migrating
    assert "airloop db migrate" in fresh.stdout, fresh.transcript

    first = first_round["migrate"]
    assert first.code == 0, first.transcript
    assert re.search(r"migrated from empty to revision \S+", first.stdout), first.transcript
    revision = first.stdout.split()[-1]
    tables = {r["name"] for r in query(home / "airloop.db", "SELECT name FROM sqlite_master")}
    assert {"dag_run", "task_instance", "xcom", "task_log"} <= tables

    second = airloop("db", "migrate", home=home)
    assert second.code == 0, second.transcript
    assert f"database is current (revision {revision})" in second.stdout, second.transcript

    check = airloop("db", "check", home=home)
    assert check.code == 0, check.transcript
    assert f"database is current (revision {revision})" in check.stdout, check.transcript

    version = first_round["version"]
    assert version.code == 0, version.transcript
    assert version.stdout.strip() == f"airloop {__version__}"
