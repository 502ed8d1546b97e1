"""``airloop tasks render``, logical dates of ``airloop run`` / ``dags trigger``, and
``airloop dags test``: the installed script, real processes, real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import Call, airloop, dag_runs, run_many, write

pytestmark = pytest.mark.slow

DAG_FILE = """
from typing import Any, ClassVar

from airloop import DAG, BaseOperator, Param, task


class Query(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("sql", "options")
    template_ext: ClassVar[tuple[str, ...]] = (".sql",)

    def __init__(self, *, sql: str, options: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.options = options

    def execute(self, context: Any) -> str:
        return self.sql


with DAG("render_cli", params={"x": "px", "fail": Param(False, type="boolean")}) as dag:

    @task
    def a() -> int:
        return 41

    @task
    def check(value: int, day: str, params: Any) -> str:
        if params["fail"]:
            raise ValueError("asked to fail")
        return f"{value} {day}"

    q = Query(
        task_id="q",
        sql="report.sql",
        options={"p": "{{ params.x }}", "later": "{{ macros.ds_add(ds, 7) }}"},
    )
    a() >> q
    check(a.override(task_id="a2")(), "{{ ds }}")
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("render")
    write(base / "dags", "report.sql", "select {{ ti.xcom_pull(task_ids='a') }} -- {{ ds }}\n")
    dag_file = write(base / "dags", "render_cli.py", DAG_FILE)
    home = base / "home"
    done = airloop(
        "run", dag_file, "--run-id", "r1", "--logical-date", "2026-03-01T06:00", home=home
    )
    assert done.code == 0, done.transcript
    return dag_file, home


def test_tasks_render_prints_the_stored_values(rendered: tuple[Path, Path]) -> None:
    _, home = rendered
    calls = {
        "q": Call(("tasks", "render", "r1", "q"), home),
        "latest": Call(("tasks", "render", "latest", "check", "--try", "1"), home),
        "no_task": Call(("tasks", "render", "r1", "nope"), home),
        "no_index": Call(("tasks", "render", "r1", "q", "--map-index", "3"), home),
        "bad_try": Call(("tasks", "render", "r1", "q", "--try", "0"), home),
        "no_try": Call(("tasks", "render", "r1", "q", "--try", "4"), home),
        "nothing": Call(("tasks", "render", "r1", "a"), home),
        "no_run": Call(("tasks", "render", "r9", "q"), home),
    }
    results = run_many(calls)
    q = results["q"]
    assert q.code == 0, q.transcript
    assert q.stdout.splitlines() == [
        "render_cli/r1 q try 1",
        "# sql",
        "select 41 -- 2026-03-01",
        "",
        "# options",
        "{",
        '  "p": "px",',
        '  "later": "2026-03-08"',
        "}",
    ]
    latest = results["latest"]
    assert latest.code == 0, latest.transcript
    assert "# op_args" in latest.stdout
    assert '"2026-03-01"' in latest.stdout
    expected = {
        "no_task": "error: run 'r1' of DAG 'render_cli' has no task 'nope'",
        "no_index": "error: task 'q' in run 'r1' of DAG 'render_cli' has no map index 3 "
        "(it has none (not mapped))",
        "bad_try": "error: --try must be 1 or more, got 0",
        "no_try": "error: q in run 'r1' of DAG 'render_cli': nothing rendered recorded for "
        "try 4 (no templates, or not run)",
        "nothing": "error: a in run 'r1' of DAG 'render_cli': nothing rendered recorded for "
        "any try (no templates, or not run)",
        "no_run": "error: no DAG run 'r9'",
    }
    for name, line in expected.items():
        result = results[name]
        assert result.code == 2, result.transcript
        assert result.err_lines == [line], result.transcript


def test_run_logical_dates_and_duplicates(rendered: tuple[Path, Path]) -> None:
    dag_file, home = rendered
    dup = airloop(
        "run", dag_file, "--run-id", "r2", "--logical-date", "2026-03-01T06:00:00Z", home=home
    )
    assert dup.code == 2, dup.transcript
    assert dup.err_lines == [
        f"error: {dag_file}: DAG 'render_cli' already has a run for logical date "
        "2026-03-01T06:00:00+00:00 ('r1'); one run per DAG and logical date: give another one"
    ]
    bad = airloop("run", dag_file, "--logical-date", "yesterday", home=home)
    assert bad.code == 2, bad.transcript
    assert bad.err_lines == [
        "error: --logical-date 'yesterday' is not an ISO 8601 date or time (e.g. 2026-05-04T03:00)"
    ]
    now = airloop("run", dag_file, "--run-id", "r3", home=home)
    assert now.code == 0, now.transcript
    runs = {r["run_id"]: r for r in dag_runs(home / "airloop.db")}
    assert set(runs) == {"r1", "r3"}
    assert runs["r1"]["logical_date"].startswith("2026-03-01 06:00:00")
    assert runs["r3"]["logical_date"] is not None  # a manual run from the CLI: now


def test_trigger_gives_a_logical_date_and_refuses_a_duplicate(
    rendered: tuple[Path, Path], tmp_path: Path
) -> None:
    dag_file, _ = rendered
    home = tmp_path / "home"
    folder = str(dag_file.parent)
    first = airloop(
        "dags", "trigger", "render_cli", "--dags-folder", folder,
        "--logical-date", "2026-02-01", home=home,
    )  # fmt: skip
    assert first.code == 0, first.transcript
    again = airloop(
        "dags", "trigger", "render_cli", "--dags-folder", folder, "--run-id", "other",
        "--logical-date", "2026-02-01T00:00:00+00:00", home=home,
    )  # fmt: skip
    assert again.code == 2, again.transcript
    assert again.err_lines == [
        "error: DAG 'render_cli' already has a run for logical date 2026-02-01T00:00:00+00:00 "
        "('manual__2026-02-01T00:00:00+00:00'); one run per DAG and logical date: give "
        "another one"
    ]
    runs = dag_runs(home / "airloop.db")
    assert [(r["run_id"], r["logical_date"][:19]) for r in runs] == [
        ("manual__2026-02-01T00:00:00+00:00", "2026-02-01 00:00:00")
    ]


def test_dags_test_exit_codes(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    dag_file, _ = rendered
    home = tmp_path / "home"
    calls = {
        "ok": Call(("dags", "test", str(dag_file), "render_cli", "--logical-date", "2026-01-05"),
                   home),
        "fails": Call(("dags", "test", str(dag_file), "render_cli", "-p", "fail=true"), home),
        "conf": Call(("dags", "test", str(dag_file), "render_cli", "--conf", '{"fail": true}'),
                     home),
        "bad_conf": Call(("dags", "test", str(dag_file), "render_cli", "--conf", "{x"), home),
        "bad_param": Call(("dags", "test", str(dag_file), "render_cli", "-p", "y=1"), home),
        "no_dag": Call(("dags", "test", str(dag_file), "nope"), home),
    }  # fmt: skip
    results = run_many(calls)
    ok = results["ok"]
    assert ok.code == 0, ok.transcript
    lines = ok.stdout.splitlines()
    assert lines[0].split() == ["task", "map", "state", "try", "duration", "error"]
    assert {line.split()[0]: line.split()[1] for line in lines[1:5]} == {
        "a": "success",
        "q": "success",
        "a2": "success",
        "check": "success",
    }
    assert lines[-1].startswith(
        "DAG run render_cli/manual__2026-01-05T00:00:00+00:00 (logical date "
        "2026-01-05T00:00:00+00:00): success"
    )
    for name in ("fails", "conf"):
        failed = results[name]
        assert failed.code == 1, failed.transcript
        assert "ValueError: asked to fail" in failed.stdout
    for name in ("bad_conf", "bad_param", "no_dag"):
        assert results[name].code == 2, results[name].transcript
        assert len(results[name].err_lines) == 1, results[name].transcript
    # Nothing was recorded: the run used a throwaway database.
    assert not (home / "airloop.db").exists()
