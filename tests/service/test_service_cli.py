"""The service and its commands as a user runs them: separate processes, one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

DAG_FILE = """
import pathlib
from airloop import DAG, task

FIXED = pathlib.Path(__file__).with_name("fixed")

with DAG("cli_steered", params={"n": 2}) as dag:
    @task
    def first(params) -> int:
        return params["n"]

    @task
    def second(x: int) -> int:
        if x == 3 and not FIXED.exists():
            raise ValueError("three is not allowed")
        return x
    second(first())
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airloop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def until(check: Callable[[], bool], within: float = 30) -> None:
    """Wait for another process to have done something (it writes the database)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {within}s")
        time.sleep(0.1)


def test_trigger_pause_clear_and_status_while_the_scheduler_runs(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "steered.py").write_text(textwrap.dedent(DAG_FILE))
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home"),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.2",
    }
    log_path = tmp_path / "scheduler.log"
    log_file = log_path.open("w")
    service = subprocess.Popen(
        [sys.executable, "-m", "airloop", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        until(lambda: cli(env, "scheduler", "status").returncode == 0)
        # A second scheduler on the same SQLite database refuses to start.
        second = cli(env, "scheduler")
        assert second.returncode == 2
        assert "another scheduler" in second.stderr

        assert cli(env, "dags", "trigger", "cli_steered", "--run-id", "ok").returncode == 0
        until(lambda: "success" in cli(env, "runs", "list", "--state", "success").stdout)

        bad = cli(env, "dags", "trigger", "cli_steered", "--param", "n=x")
        assert bad.returncode == 2
        assert "parameter 'n'" in bad.stderr

        assert cli(env, "dags", "pause", "cli_steered").returncode == 0
        assert (
            cli(env, "dags", "trigger", "cli_steered", "-p", "n=3", "--run-id", "r3").returncode
            == 0
        )
        time.sleep(1.0)  # five poll intervals: paused, so it must stay queued
        assert "queued" in cli(env, "runs", "list", "--dag-id", "cli_steered").stdout
        assert cli(env, "dags", "unpause", "cli_steered").returncode == 0
        until(lambda: "failed" in cli(env, "runs", "list", "--state", "failed").stdout)

        # Fix the cause, clear the failed task: the run goes on and succeeds.
        (dags / "fixed").write_text("")
        cleared = cli(env, "tasks", "clear", "r3", "--failed-only")
        assert cleared.returncode == 0, cleared.stderr
        until(lambda: "failed" not in cli(env, "runs", "list", "--dag-id", "cli_steered").stdout)
        states = cli(env, "tasks", "states", "r3")
        assert "success" in states.stdout
        assert "failed" not in states.stdout

        status = cli(env, "scheduler", "status")
        assert "alive" in status.stdout
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        log_file.close()
    assert service.returncode == 0
    # The service says what it does with runs, at INFO, without -v.
    said = log_path.read_text()
    assert "starting triggered run ok of cli_steered" in said
    assert "run ok of cli_steered finished: success in " in said
    assert "run r3 of cli_steered finished: failed in " in said
    status = cli(env, "scheduler", "status")
    assert status.returncode == 1
    assert "NOT running" in status.stdout


def test_runs_list_refuses_an_unknown_state(tmp_path: Path) -> None:
    """A state that no run can have is a typo, not an empty list."""
    env = {**os.environ, "AIRLOOP_HOME": str(tmp_path / "home")}
    assert cli(env, "db", "migrate").returncode == 0
    done = cli(env, "runs", "list", "--state", "succes")
    assert done.returncode == 2, done.stdout
    assert "succes" in done.stderr
    assert "success" in done.stderr
