"""``airloop tasks test``: one task, in the CLI's process, recorded nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import Call, CliResult, airloop, query, run_many, write

pytestmark = pytest.mark.slow

DAG_FILE = """
from airloop import DAG, Param, task, task_group

with DAG("tasks_cli", params={"n": Param(3, type=int), "word": Param("hi", type=str)}) as dag:

    @task
    def show(params: dict) -> str:
        return f"{params['word']} x{params['n']}"

    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    async def double(x: int, factor: int) -> int:
        return x * factor

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @task
    def explode() -> None:
        raise RuntimeError("kaboom on purpose")

    @task
    def uses_ti(ti) -> int:
        return ti.map_index

    @task
    def pulls(ti) -> object:
        return ti.xcom_pull(task_ids="show")

    @task.branch
    def pick() -> str:
        return "uses_ti"

    targets = [uses_ti(), pulls()]
    show() >> targets
    pick() >> targets
    total(double.partial(factor=10).expand(x=numbers()))
    explode()

    @task
    def scaled(v: int, k: int, ti) -> list[int]:
        return [v, k, ti.map_index, ti.xcom_pull(task_ids="grp.double")]

    @task_group
    def grp(k: int):
        return scaled(double(k, 2), k)

    grp.expand(k=[3, 4])
"""

TABLES = ("dag_run", "task_instance", "xcom", "task_log")


@pytest.fixture(scope="module")
def dag_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("tasks_test"), "tasks_cli.py", DAG_FILE)


@pytest.fixture(scope="module")
def results(dag_file: Path) -> dict[str, CliResult]:
    base = dag_file.parent
    # The params case runs against an existing, migrated database: it must stay empty.
    migrated = airloop("db", "migrate", home=base / "params")
    assert migrated.code == 0, migrated.transcript

    def call(name: str, *args: str) -> Call:
        return Call(("tasks", "test", str(dag_file), "tasks_cli", *args), base / name)

    return run_many(
        {
            "params": call("params", "show", "--param", "n=7", "--param", "word=yo"),
            "mapped": call(
                "mapped", "double", "--upstream", "numbers=[4, 5, 6]", "--map-index", "2"
            ),
            "reduce": call("reduce", "total", "--upstream", "double=[10, 20, 30]"),
            "missing_upstream": call("missing_upstream", "double", "--map-index", "1"),
            "failing": call("failing", "explode"),
            "unknown_task": call("unknown_task", "nope"),
            "bad_param": call("bad_param", "show", "--param", "n=abc"),
            "ti_no_upstream": call("ti_no_upstream", "uses_ti"),
            "pull_given": call("pull_given", "pulls", "-u", 'show="given"'),
            "upstream_without_value": call("upstream_without_value", "double", "-u", "numbers"),
            "branch": call("branch", "pick"),
            "in_mapped_group": call(
                "in_mapped_group", "grp.scaled", "--map-index", "1", "-u", "grp.double=8"
            ),
        }
    )


def test_task_with_params_prints_its_return_value_and_records_nothing(
    results: dict[str, CliResult],
) -> None:
    result = results["params"]
    assert result.code == 0, result.transcript
    assert result.stdout.startswith("success"), result.transcript
    assert 'returned: "yo x7"' in result.stdout, result.transcript
    for table in TABLES:
        assert query(result.db, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}], table
    assert not (result.home / "logs").exists()


def test_a_branch_says_what_it_would_skip(results: dict[str, CliResult]) -> None:
    result = results["branch"]
    assert result.code == 0, result.transcript
    assert 'returned: "uses_ti"' in result.stdout, result.transcript
    assert "skips downstream: pulls" in result.stdout, result.transcript


def test_mapped_task_with_upstream_and_map_index(results: dict[str, CliResult]) -> None:
    result = results["mapped"]
    assert result.code == 0, result.transcript
    assert "returned: 60" in result.stdout, result.transcript  # 6 * factor 10
    assert not result.db.exists()


def test_task_reducing_a_mapped_upstream(results: dict[str, CliResult]) -> None:
    result = results["reduce"]
    assert result.code == 0, result.transcript
    assert "returned: 60" in result.stdout, result.transcript


def test_a_task_taking_ti_runs_without_its_upstream_values(
    results: dict[str, CliResult],
) -> None:
    result = results["ti_no_upstream"]
    assert result.code == 0, result.transcript
    assert "returned: -1" in result.stdout, result.transcript


def test_xcom_pull_reads_an_upstream_value_given_on_the_command_line(
    results: dict[str, CliResult],
) -> None:
    result = results["pull_given"]
    assert result.code == 0, result.transcript
    assert 'returned: "given"' in result.stdout, result.transcript


def test_missing_upstream_names_the_needed_task(results: dict[str, CliResult]) -> None:
    result = results["missing_upstream"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    line = result.err_lines[0]
    assert "'double'" in line
    assert "'numbers'" in line
    assert "--upstream numbers=" in line


def test_failing_task_exits_1(results: dict[str, CliResult]) -> None:
    result = results["failing"]
    assert result.code == 1, result.transcript
    assert "failed" in result.stdout, result.transcript
    assert "RuntimeError: kaboom on purpose" in result.stdout, result.transcript
    # The task's own log (with the traceback) goes to the console.
    assert "Traceback" in result.stderr, result.transcript


def test_unknown_task(results: dict[str, CliResult], dag_file: Path) -> None:
    result = results["unknown_task"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert str(dag_file) in result.err_lines[0]
    assert "'nope'" in result.err_lines[0]


def test_invalid_param(results: dict[str, CliResult], dag_file: Path) -> None:
    result = results["bad_param"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert str(dag_file) in result.err_lines[0]
    assert "'abc'" in result.err_lines[0]


def test_upstream_without_value_is_bad_input(results: dict[str, CliResult]) -> None:
    result = results["upstream_without_value"]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert "numbers" in result.err_lines[0]
    assert "--upstream" in result.err_lines[0]


def test_a_task_of_a_mapped_group_takes_its_same_index_upstream_value(
    results: dict[str, CliResult],
) -> None:
    result = results["in_mapped_group"]
    assert result.code == 0, result.transcript
    # k is element 1 of the group's list; grp.double's value is that instance's own.
    assert "returned: [8,4,1,8]" in result.stdout, result.transcript
