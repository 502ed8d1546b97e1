"""``airloop standalone``: a real process serving HTTP and running DAGs on one loop.

It answers on the port it printed, runs a DAG triggered from another process, and a
SIGTERM lets the running task finish (the grace period), then the process exits 0.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support import (
    Call,
    _prepare,
    airloop,
    dag_runs,
    query,
    spawn,
    task_instances,
    wait_until,
    write,
)

pytestmark = pytest.mark.slow

DAGS = """
import asyncio
from airloop import DAG, task

with DAG("quick") as quick:
    @task
    async def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    async def double(x: int) -> int:
        return 2 * x

    double.expand(x=numbers())

with DAG("slow") as slow:
    @task
    async def takes_a_while() -> str:
        await asyncio.sleep(3)
        return "finished"

    takes_a_while()
"""

#: Grace for running tasks at a stop; the process must be gone well within it (+margin).
GRACE = 20.0
SERVING = re.compile(r"serving the API and UI on (http://\S+)")


@contextlib.contextmanager
def standalone(home: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``airloop standalone --port 0``: the process, its base URL, its log file."""
    argv, env, cwd = _prepare(
        Call(
            ("standalone", "--port", "0", "--dags-folder", str(home / "dags"), *args),
            home,
            {
                "AIRLOOP_SHUTDOWN_GRACE_SECONDS": str(GRACE),
                "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.5",
            },
        )
    )
    log = home / "standalone.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
    try:
        found: list[str] = []

        def started() -> bool:
            match = SERVING.search(log.read_text())
            if match:
                found.append(match.group(1))
            return bool(found) or proc.poll() is not None

        assert wait_until(started, 60, 0.1), log.read_text()
        assert found, f"exited {proc.returncode}:\n{log.read_text()}"
        yield proc, found[0], log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_serves_runs_a_triggered_dag_and_stops_on_sigterm(home: Path) -> None:
    write(home / "dags", "dags.py", DAGS)
    with standalone(home) as (proc, url, log):
        with httpx.Client(base_url=url, timeout=10) as http:
            spec = http.get("/api/v1/openapi.json")
            assert spec.status_code == 200
            assert spec.json()["info"]["title"] == "airloop"
            assert wait_until(
                lambda: http.get("/api/v1/health").json()["scheduler"]["status"] == "healthy",
                60,
                0.2,
            ), log.read_text()
            health = http.get("/api/v1/health").json()
            assert health["database"] == {"status": "healthy", "error": None}
            assert health["scheduler"]["pid"] == proc.pid
            assert health["scheduler"]["loop_lag"] is not None
            metrics = http.get("/metrics")
            assert metrics.status_code == 200
            # The live watchdog's number: the scheduler runs in this very process.
            assert "airloop_scheduler_loop_lag_max_seconds" in metrics.text

            trigger = airloop(
                "dags",
                "trigger",
                "quick",
                "--run-id",
                "q1",
                "--dags-folder",
                home / "dags",
                home=home,
            )
            assert trigger.code == 0, trigger.transcript
            db = home / "airloop.db"
            assert wait_until(
                lambda: any(r["state"] == "success" for r in dag_runs(db)), 60, 0.2
            ), log.read_text()
            tis = task_instances(db, "q1")
            assert {k: v["state"] for k, v in tis.items()} == {
                "numbers": "success",
                "double[0]": "success",
                "double[1]": "success",
                "double[2]": "success",
            }
            assert 'airloop_dag_runs{dag_id="quick",state="success"}' in _scrape_until(
                http, 'airloop_dag_runs{dag_id="quick",state="success"} 1.0'
            )

            slow = airloop(
                "dags",
                "trigger",
                "slow",
                "--run-id",
                "s1",
                "--dags-folder",
                home / "dags",
                home=home,
            )
            assert slow.code == 0, slow.transcript
            assert wait_until(
                lambda: task_instances(db, "s1").get("takes_a_while", {}).get("state") == "running",
                60,
                0.1,
            ), log.read_text()

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=GRACE + 15)
        took = time.monotonic() - sent
        text = log.read_text()
        assert code == 0, text
        assert took < GRACE, f"took {took:.1f}s to stop:\n{text}"
        # The running task got its grace and finished; the HTTP server stopped after.
        assert task_instances(db, "s1")["takes_a_while"]["state"] == "success", text
        assert "SIGTERM received: stopping" in text
        assert text.index("SIGTERM received") < text.rindex("Finished server process")
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=url, timeout=2) as http:
            http.get("/metrics")  # the port is closed now


def _scrape_until(http: httpx.Client, line: str) -> str:
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = http.get("/metrics").text
        if line in text:
            return text
        time.sleep(0.5)  # the database's numbers are cached for 5 s
    return text


def test_refuses_a_public_address_without_login(home: Path) -> None:
    result = airloop("standalone", "--host", "0.0.0.0", "--port", "0", home=home)
    assert result.code == 2, result.transcript
    assert result.err_lines == [
        "error: refusing to listen on 0.0.0.0: with [api] auth = 'none' every request is the "
        "admin, so only a loopback address (127.0.0.1, ::1, localhost) is allowed; set [api] "
        "auth = 'password' (AIRLOOP_API__AUTH=password) to listen on other addresses"
    ], result.transcript


def test_a_taken_port_fails_with_one_line(home: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = airloop("standalone", "--port", str(port), home=home)
    assert result.code == 2, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.transcript


def test_another_scheduler_on_the_database_is_one_line_and_exit_2(home: Path) -> None:
    (home / "dags").mkdir(parents=True)
    db = home / "airloop.db"

    def beating() -> bool:
        try:
            return db.exists() and bool(query(db, "SELECT id FROM scheduler_heartbeat"))
        except sqlite3.OperationalError:  # the file exists, its tables not yet
            return False

    with spawn(Call(("scheduler", "--dags-folder", str(home / "dags")), home)) as scheduler:
        assert wait_until(beating, 60, 0.1)
        result = airloop("standalone", "--port", "0", "--dags-folder", home / "dags", home=home)
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=60)
    assert result.code == 2, result.transcript
    errors = [line for line in result.err_lines if line.startswith("error:")]
    assert errors == [
        f"error: another scheduler (pid {scheduler.pid}) is running on {db}; SQLite allows "
        "one (use PostgreSQL for several)"
    ], result.transcript
    assert "Traceback" not in result.stderr
