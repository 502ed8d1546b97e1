"""``airloop dags list``: good DAGs are listed, broken files reported (exit 2), not fatal."""

from __future__ import annotations

import pytest

from .support import Call, CliResult, line_of, run_many, write

pytestmark = pytest.mark.slow

GOOD_ONE = """
from airloop import DAG, task

with DAG("alpha", tags=["team-a"]) as dag:

    @task
    def a() -> int:
        return 1

    a()
"""

GOOD_TWO = """
from datetime import UTC, datetime, timedelta

from airloop import DAG, task


@task
def hello() -> str:
    return "hello"


# A scheduled DAG needs a start_date (as in Airflow).
with DAG("beta", schedule=timedelta(hours=1), start_date=datetime(2026, 1, 1, tzinfo=UTC)) as beta:
    hello()
    hello()

with DAG("gamma") as gamma:
    hello()
"""

BROKEN = """
from airloop import DAG

with DAG("broken") as dag:
    raise RuntimeError("broken at import")  # the error
"""

# Underscore-prefixed files are helpers, not DAG files: never loaded, never reported.
HELPER = """
raise RuntimeError("a helper module must not be loaded as a DAG file")
"""

EXITS = """
import sys

sys.exit(3)  # a script, not a DAG file
"""


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    base = tmp_path_factory.mktemp("dags_list")
    folder = base / "dags"
    write(folder, "good_one.py", GOOD_ONE)
    write(folder, "good_two.py", GOOD_TWO)
    write(folder, "broken.py", BROKEN)
    write(folder, "_helpers.py", HELPER)
    exiting = base / "exiting"
    write(exiting, "good_one.py", GOOD_ONE)
    write(exiting, "calls_exit.py", EXITS)
    return run_many(
        {
            "folder": Call(("dags", "list", str(folder)), base / "folder"),
            "file": Call(("dags", "list", str(folder / "good_one.py")), base / "file"),
            "missing": Call(("dags", "list", str(base / "nowhere")), base / "missing"),
            "exiting": Call(("dags", "list", str(exiting)), base / "exiting_home"),
        }
    )


def test_folder_lists_good_dags_and_reports_the_broken_file(
    listing: dict[str, CliResult],
) -> None:
    result = listing["folder"]
    assert result.code == 2, result.transcript
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert set(rows) == {"alpha", "beta", "gamma"}, result.transcript
    folder = result.home.parent / "dags"
    assert str(folder / "good_one.py") in rows["alpha"]
    assert str(folder / "good_two.py") in rows["beta"]
    assert str(folder / "good_two.py") in rows["gamma"]
    assert "team-a" in rows["alpha"]
    assert [c.strip() for c in rows["beta"].split("│")[2:4]] == ["2", "1:00:00"]

    broken = folder / "broken.py"
    assert len(result.err_lines) == 1, result.transcript
    (line,) = result.err_lines
    assert f"{broken}:{line_of(broken, 'the error')}:" in line, result.transcript
    assert "RuntimeError: broken at import" in line
    assert "_helpers.py" not in result.stdout + result.stderr


def test_single_good_file(listing: dict[str, CliResult]) -> None:
    result = listing["file"]
    assert result.code == 0, result.transcript
    assert "alpha" in result.stdout
    assert "beta" not in result.stdout
    assert result.stderr == "", result.transcript


def test_missing_path(listing: dict[str, CliResult]) -> None:
    result = listing["missing"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert str(result.home.parent / "nowhere") in result.err_lines[0]


def test_file_calling_sys_exit_is_reported_not_fatal(listing: dict[str, CliResult]) -> None:
    result = listing["exiting"]
    assert result.code == 2, result.transcript
    assert "alpha" in result.stdout, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert "calls_exit.py" in result.err_lines[0], result.transcript
