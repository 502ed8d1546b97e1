"""Secret masking through the CLI (ADR 0032): a secret registered by task code (or by a
DAG file) is ``***`` in the run summary, ``tasks states``, ``tasks render``, ``tasks
test``, one-line errors and the task log files; ``sensitive_var_conn_names`` names a
field to hide whole. The installed script, real processes, real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import Call, airloop, run_many, write

pytestmark = pytest.mark.slow

DAG_FILE = """
import logging
from typing import Any, ClassVar

from airloop import DAG, BaseOperator, mask_secret, task


class Query(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("sql", "pin_code")

    def __init__(self, *, sql: str, pin_code: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.pin_code = pin_code

    def execute(self, context: Any) -> None:
        print("running", self.sql)
        raise ValueError(f"cannot run {self.sql}")


def register(value: str) -> str:
    mask_secret(value)
    return value


with DAG("leak", user_defined_macros={"register": register}) as dag:
    Query(
        task_id="query",
        sql="select '{{ register('s3cr3t-value') }}'",
        pin_code="pin-{{ 1234 }}",
    )

    @task
    def body() -> None:
        mask_secret({"password": "body-s3cr3t", "login": "visible-login"})
        logging.getLogger("leak").warning("logged body-s3cr3t by visible-login")
        raise RuntimeError("failed with body-s3cr3t")

    body()
"""

BAD_FILE = """
from airloop import mask_secret

mask_secret("import-s3cr3t")
raise ValueError("cannot connect with import-s3cr3t")
"""

ENV = {"AIRLOOP_SENSITIVE_VAR_CONN_NAMES": "pin_code, other_name"}
SECRETS = ("s3cr3t-value", "body-s3cr3t", "import-s3cr3t", "pin-1234")


def test_secrets_are_masked_in_everything_the_cli_prints(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dag_file = write(dags, "leak.py", DAG_FILE)
    bad_file = write(dags, "bad.py", BAD_FILE)
    home = tmp_path / "home"
    ran = airloop("run", dag_file, "--run-id", "r1", home=home, env=ENV)
    assert ran.code == 1, ran.transcript
    assert "query  ValueError: cannot run select '***'" in ran.stdout, ran.transcript
    assert "body  RuntimeError: failed with ***" in ran.stdout, ran.transcript

    results = run_many(
        {
            "render": Call(("tasks", "render", "r1", "query"), home, ENV),
            "states": Call(("tasks", "states", "r1"), home, {"COLUMNS": "400"}),
            "bad": Call(("run", str(bad_file)), tmp_path / "home2", ENV),
            "test_body": Call(("tasks", "test", str(dag_file), "leak", "body"), home, ENV),
        }
    )
    render = results["render"]
    assert render.code == 0, render.transcript
    assert render.stdout.splitlines() == [
        "leak/r1 query try 1",
        "# sql",
        "select '***'",
        "# pin_code",
        "***",
    ]
    states = results["states"]
    assert "ValueError: cannot run select '***'" in states.stdout, states.transcript
    assert "RuntimeError: failed with ***" in states.stdout, states.transcript
    bad = results["bad"]
    assert bad.code == 2, bad.transcript
    assert bad.err_lines == [f"error: {bad_file}:4: ValueError: cannot connect with ***"]
    test_body = results["test_body"]
    assert test_body.code == 1, test_body.transcript
    assert "failed: RuntimeError: failed with ***" in test_body.stdout, test_body.transcript
    assert "logged *** by visible-login" in test_body.stderr, test_body.transcript

    logs = [path.read_text() for path in (home / "logs").rglob("*.log")]
    assert len(logs) == 2
    assert any("logged *** by visible-login" in text for text in logs)
    assert any("running select '***'" in text for text in logs)
    for result in (ran, *results.values()):
        for secret in SECRETS:
            assert secret not in result.stdout + result.stderr, result.transcript
    for text in logs:
        for secret in SECRETS:
            assert secret not in text, text


def test_console_log_records_are_masked() -> None:
    """The CLI's console handler filter: message, arguments and traceback."""
    import logging
    import sys

    from airloop.cli.common import RedactingFilter
    from airloop.core import masking

    masking.MASKER.reset()
    try:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "plain %s", ("text",), None)
        assert RedactingFilter().filter(record)
        assert record.getMessage() == "plain text"  # nothing registered: untouched
        masking.mask_secret("console-s3cr3t")
        try:
            raise ValueError("boom console-s3cr3t")
        except ValueError:
            exc_info = sys.exc_info()
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "with %s", ("console-s3cr3t",), exc_info
        )
        assert RedactingFilter().filter(record)
        formatted = logging.Formatter().format(record)
        assert "console-s3cr3t" not in formatted
        assert formatted.startswith("with ***\nTraceback")
        assert formatted.endswith("ValueError: boom ***")
    finally:
        masking.MASKER.reset()
