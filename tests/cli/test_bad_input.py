"""Bad input: exit code 2 and ONE line on stderr naming the file (and line) and the cause.

Every case is a separate ``airloop run`` with its own AIRLOOP_HOME; the module runs
them all at once in its fixture, then each test checks one result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from .support import Call, CliResult, dag_runs, line_of, run_many, write

pytestmark = pytest.mark.slow

PARAMS_DAG = """
from airloop import DAG, Param, task

with DAG("with_params", params={"n": Param(3, type=int), "word": Param("hi", type=str)}) as dag:

    @task
    def show(params: dict) -> str:
        return f"{params['word']} x{params['n']}"

    show()
"""

SYNTAX_ERROR = """
from airloop import DAG, task

with DAG("syntax") as dag:

    @task
    def a() -> int:
        return 1 +  # the syntax error

    a()
"""

IMPORT_ERROR = """
from airloop import DAG, task
import airloop_tests_no_such_module  # the import error

with DAG("import_error") as dag:
    pass
"""

CYCLE = """
from airloop import DAG, task

with DAG("cyclic") as dag:

    @task
    def a() -> None: ...

    @task
    def b() -> None: ...

    ta, tb = a(), b()
    ta >> tb >> ta
"""

DUPLICATE = """
from airloop import DAG, BaseOperator


class Noop(BaseOperator):
    def execute(self, context: object) -> None:
        return None


with DAG("duplicate") as dag:
    Noop(task_id="same_id")
    Noop(task_id="same_id")  # the duplicate
"""

TWO_DAGS = """
from airloop import DAG, task


@task
def hello() -> str:
    return "hello"


with DAG("first_dag") as first:
    hello()

with DAG("second_dag") as second:
    hello()
"""

UNKNOWN_POOL = """
from airloop import DAG, task

with DAG("pooled") as dag:

    @task(pool="no_such_pool")
    def a() -> int:
        return 1

    a()
"""

NO_DAG = """
X = 1
"""

HELPER_WITH_SYNTAX_ERROR = """
VALUE = 1


def broken(:  # the syntax error, in a module the DAG file imports
    pass
"""

USES_HELPER = """
from airloop import DAG, task

import airloop_tests_helper_mod

with DAG("uses_helper") as dag:

    @task
    def a() -> int:
        return airloop_tests_helper_mod.VALUE

    a()
"""


NO_ASYNCPG = """
import sys

sys.modules["asyncpg"] = None  # as if airloop[postgres] was not installed
"""


@dataclass(frozen=True)
class Expect:
    call: Call
    #: regular expressions the one stderr line must match (each searched for)
    patterns: tuple[str, ...]


def esc(value: object) -> str:
    return re.escape(str(value))


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CliResult, Expect]]:
    base = tmp_path_factory.mktemp("bad_input")
    dags = base / "dags"
    params = write(dags, "with_params.py", PARAMS_DAG)
    syntax = write(dags, "syntax_error.py", SYNTAX_ERROR)
    import_error = write(dags, "import_error.py", IMPORT_ERROR)
    cycle = write(dags, "cycle.py", CYCLE)
    duplicate = write(dags, "duplicate.py", DUPLICATE)
    two = write(dags, "two_dags.py", TWO_DAGS)
    pooled = write(dags, "unknown_pool.py", UNKNOWN_POOL)
    no_dag = write(dags, "no_dag.py", NO_DAG)
    missing = dags / "does_not_exist.py"
    unknown_key = write(base, "unknown-key.toml", "sync_threads = 4\nno_such_key = 1\n")
    bad_toml = write(base, "malformed.toml", "sync_threads = \n")
    helpers = base / "helpers"
    helper = write(helpers, "airloop_tests_helper_mod.py", HELPER_WITH_SYNTAX_ERROR)
    uses_helper = write(dags, "uses_helper.py", USES_HELPER)
    misspelled = write(base, "misspelled.toml", "sync_thread = 4\n")
    misspelled_aws = write(base, "misspelled-aws.toml", "[aws]\nregoin = 'eu-west-1'\n")
    # A "driver not installed" that is real for the process: importing asyncpg fails.
    no_asyncpg = write(base / "no_asyncpg", "sitecustomize.py", NO_ASYNCPG)
    not_a_folder = write(base, "a_file", "")

    def db_url(name: str, url: str, *patterns: str) -> Expect:
        return Expect(
            Call(("run", str(params)), base / name, env={"AIRLOOP_DATABASE_URL": url}),
            ("AIRLOOP_DATABASE_URL", *patterns),
        )

    expectations = {
        "syntax_error": Expect(
            Call(("run", str(syntax)), base / "syntax_error"),
            (esc(f"{syntax}:{line_of(syntax, 'the syntax error')}:"), "SyntaxError"),
        ),
        "import_error": Expect(
            Call(("run", str(import_error)), base / "import_error"),
            (
                esc(f"{import_error}:{line_of(import_error, 'the import error')}:"),
                "ModuleNotFoundError",
                "airloop_tests_no_such_module",
            ),
        ),
        "cycle": Expect(
            Call(("run", str(cycle)), base / "cycle"),
            (esc(cycle), "cycle", r"\ba -> b -> a\b|\bb -> a -> b\b"),
        ),
        "duplicate_task_id": Expect(
            Call(("run", str(duplicate)), base / "duplicate"),
            (esc(f"{duplicate}:{line_of(duplicate, 'the duplicate')}:"), "'same_id'"),
        ),
        "unknown_param": Expect(
            Call(("run", str(params), "--param", "nope=1"), base / "unknown_param"),
            (esc(params), "unknown parameter 'nope'"),
        ),
        "invalid_param_value": Expect(
            Call(("run", str(params), "--param", "n=abc"), base / "invalid_param_value"),
            (esc(params), "'n'", "'abc'", r"\bint\b"),
        ),
        "param_without_value": Expect(
            Call(("run", str(params), "--param", "n"), base / "param_without_value"),
            (esc(params), "KEY=VALUE"),
        ),
        "unknown_dag_id": Expect(
            Call(("run", str(two), "--dag-id", "third_dag"), base / "unknown_dag_id"),
            (esc(two), "'third_dag'", "first_dag", "second_dag"),
        ),
        "two_dags_without_dag_id": Expect(
            Call(("run", str(two)), base / "two_dags"),
            (esc(two), "first_dag", "second_dag", "--dag-id"),
        ),
        "no_dag_in_file": Expect(
            Call(("run", str(no_dag)), base / "no_dag"),
            (esc(no_dag), "no DAG"),
        ),
        "path_does_not_exist": Expect(
            Call(("run", str(missing)), base / "missing"),
            (esc(missing), "no such file"),
        ),
        "unknown_setting_key": Expect(
            Call(("run", str(params), "--config", str(unknown_key)), base / "unknown_key"),
            ("no_such_key",),
        ),
        "config_file_missing": Expect(
            Call(("run", str(params), "--config", str(base / "nope.toml")), base / "no_config"),
            (esc(base / "nope.toml"), "does not exist"),
        ),
        "unknown_pool": Expect(
            Call(("run", str(pooled)), base / "unknown_pool"),
            (esc(pooled), "'no_such_pool'"),
        ),
        "malformed_settings_file": Expect(
            Call(("run", str(params), "--config", str(bad_toml)), base / "malformed_toml"),
            (esc(bad_toml), "line 1"),
        ),
        "syntax_error_in_imported_module": Expect(
            Call(
                ("run", str(uses_helper)),
                base / "helper_syntax",
                env={"PYTHONPATH": str(helpers)},
            ),
            (esc(f"{helper}:{line_of(helper, 'the syntax error')}"), "SyntaxError"),
        ),
        "sync_postgres_driver": db_url(
            "sync_postgres",
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
            r"postgresql\+psycopg2:// is a sync driver",
            r"use postgresql\+asyncpg://",
        ),
        "sqlite_without_async_driver": db_url(
            "sync_sqlite",
            "sqlite:///x.db",
            r"sqlite:// is a sync driver",
            r"use sqlite\+aiosqlite://",
        ),
        "postgres_scheme_alias": db_url(
            "postgres_alias",
            "postgres://postgres@127.0.0.1:5432/test",
            r"postgres://",
            r"use postgresql\+asyncpg://",
        ),
        "unsupported_database": db_url(
            "mssql",
            "mssql+aioodbc://sa@127.0.0.1/test",
            r"mssql\+aioodbc:// is not supported",
            r"sqlite\+aiosqlite://",
            r"postgresql\+asyncpg://",
            r"mysql\+asyncmy://",
        ),
        "driver_not_installed": Expect(
            Call(
                ("run", str(params)),
                base / "no_asyncpg_home",
                env={
                    "AIRLOOP_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
                    "PYTHONPATH": str(no_asyncpg.parent),
                },
            ),
            (r"\basyncpg\b", "not installed", esc("pip install 'airloop[postgres]'")),
        ),
        "pools_not_json": Expect(
            Call(("run", str(params)), base / "pools", env={"AIRLOOP_POOLS": "warehouse=4"}),
            ("AIRLOOP_POOLS", "JSON", esc("AIRLOOP_POOLS__WAREHOUSE=4")),
        ),
        "misspelled_setting_key": Expect(
            Call(("run", str(params), "--config", str(misspelled)), base / "misspelled"),
            (esc(misspelled), "unknown setting 'sync_thread'", "did you mean 'sync_threads'"),
        ),
        "misspelled_nested_setting_key": Expect(
            Call(("run", str(params), "--config", str(misspelled_aws)), base / "misspelled_aws"),
            (esc(misspelled_aws), "unknown setting 'aws.regoin'", "did you mean 'aws.region'"),
        ),
        "dag_file_is_a_directory": Expect(
            Call(("run", str(dags)), base / "directory"),
            (esc(dags), "is a directory"),
        ),
        "home_not_a_folder": Expect(
            Call(
                ("run", str(params)),
                base / "unused_home",
                env={"AIRLOOP_HOME": str(not_a_folder / "home")},
            ),
            (esc(not_a_folder / "home"), "AIRLOOP_HOME", "[Nn]ot a directory"),
        ),
    }
    results = run_many({name: expect.call for name, expect in expectations.items()})
    return {name: (results[name], expect) for name, expect in expectations.items()}


#: Settings at fault, not the DAG file: the message must not name the DAG file.
NOT_THE_DAG_FILES_FAULT = {
    "sync_postgres_driver",
    "sqlite_without_async_driver",
    "postgres_scheme_alias",
    "unsupported_database",
    "driver_not_installed",
    "pools_not_json",
    "home_not_a_folder",
}

BUGS: dict[str, str] = {}  # cases that expose a known bug: name -> reason (xfail)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BUGS[name]))
        if name in BUGS
        else name
        for name in [
            "syntax_error",
            "import_error",
            "cycle",
            "duplicate_task_id",
            "unknown_param",
            "invalid_param_value",
            "param_without_value",
            "unknown_dag_id",
            "two_dags_without_dag_id",
            "no_dag_in_file",
            "path_does_not_exist",
            "unknown_setting_key",
            "config_file_missing",
            "unknown_pool",
            "malformed_settings_file",
            "syntax_error_in_imported_module",
            "sync_postgres_driver",
            "sqlite_without_async_driver",
            "postgres_scheme_alias",
            "unsupported_database",
            "driver_not_installed",
            "pools_not_json",
            "misspelled_setting_key",
            "misspelled_nested_setting_key",
            "dag_file_is_a_directory",
            "home_not_a_folder",
        ]
    ],
)
def test_bad_input_exits_2_with_one_line(
    cases: dict[str, tuple[CliResult, Expect]], name: str
) -> None:
    result, expect = cases[name]
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    (line,) = result.err_lines
    assert line.startswith("error: "), result.transcript
    for pattern in expect.patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    if name in NOT_THE_DAG_FILES_FAULT:
        assert ".py" not in line, f"the DAG file is blamed: {line!r}"
    assert "Traceback" not in result.stderr
    assert result.stdout == "", result.transcript
    # Nothing was run: no DAG run recorded (the database may not even exist).
    assert dag_runs(result.db) == []
