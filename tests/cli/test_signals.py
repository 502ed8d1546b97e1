"""SIGTERM / SIGINT stop ``airloop run``: exit 143 / 130, and nothing is left running.

The DAG holds every kind of unfinished work at the moment of the signal: an async
task awaiting a long sleep, a sync task sleeping in short steps in the (single)
worker thread, a second sync task queued behind it, a task waiting for its retry,
and a downstream task that never started.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .support import Call, dag_runs, spawn, task_instances, wait_until, write

pytestmark = pytest.mark.slow

LONG_WAIT = """
import asyncio
import time

from airloop import DAG, task

with DAG("long_wait") as dag:

    @task
    async def sleeper() -> None:
        await asyncio.sleep(60)

    @task
    def blocker_a() -> None:
        for _ in range(600):
            time.sleep(0.1)

    @task
    def blocker_b() -> None:
        for _ in range(600):
            time.sleep(0.1)

    @task(retries=3, retry_delay=60)
    async def retrier() -> None:
        raise ConnectionError("not yet")

    @task
    def after(a: None, b: None, c: None, d: None) -> None:
        return None

    after(sleeper(), blocker_a(), blocker_b(), retrier())
"""

STUBBORN = """
import asyncio

from airloop import DAG, task

with DAG("stubborn") as dag:

    @task
    async def ignores_cancellation() -> None:
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass  # a badly behaved task: it swallows every cancellation

    ignores_cancellation()
"""

#: States that mean "not finished": none may survive a stopped run.
UNFINISHED = {"scheduled", "queued", "running", "up_for_retry"}
#: How long the run may take to stop after the signal (the grace period is 3 s).
EXIT_WITHIN = 15.0


def states_now(db: Path) -> dict[str, str]:
    """Task states of the run right now; {} while the database is not ready yet."""
    if not db.exists():
        return {}
    try:
        return {task: ti["state"] for task, ti in task_instances(db).items()}
    except sqlite3.DatabaseError:  # the CLI is still creating the file or the schema
        return {}


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_signal_stops_the_run_and_fails_what_was_running(
    tmp_path: Path, home: Path, signum: signal.Signals, code: int
) -> None:
    dag_file = write(tmp_path, "long_wait.py", LONG_WAIT)
    db = home / "airloop.db"
    env = {"AIRLOOP_SHUTDOWN_GRACE_SECONDS": "3", "AIRLOOP_SYNC_THREADS": "1"}
    call = Call(("run", str(dag_file), "--run-id", "stopped"), home, env)
    with spawn(call) as proc:

        def all_waiting() -> bool:
            states = states_now(db)
            return (
                states.get("sleeper") == "running"
                and "running" in (states.get("blocker_a"), states.get("blocker_b"))
                and states.get("retrier") == "up_for_retry"
            ) or proc.poll() is not None

        assert wait_until(all_waiting, timeout=30), states_now(db)
        assert proc.poll() is None, proc.communicate()
        before = states_now(db)
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            stdout, stderr = proc.communicate(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"airloop run did not exit within {EXIT_WITHIN:g}s of {signum.name}")
        took = time.monotonic() - sent

    transcript = f"exit {proc.returncode} after {took:.1f}s\n{stdout}\n{stderr}"
    assert proc.returncode == code, transcript
    assert f"{signum.name} received: stopping" in stderr, transcript
    assert "Run long_wait/stopped failed" in stdout, transcript
    assert f"interrupted: {signum.name} received" in stdout, transcript

    tis = task_instances(db, "stopped")
    left = {task: ti["state"] for task, ti in tis.items() if ti["state"] in UNFINISHED}
    assert left == {}, transcript
    for task, state in before.items():
        if state in {"queued", "running", "up_for_retry"}:
            assert tis[task]["state"] == "failed", (task, tis[task])
            assert tis[task]["error"].startswith("interrupted"), (task, tis[task])
    assert tis["after"]["state"] in {"none", "upstream_failed"}
    (run,) = (r for r in dag_runs(db) if r["run_id"] == "stopped")
    assert run["state"] == "failed"
    assert run["end_date"] is not None
    assert (run["note"] or "").startswith(f"interrupted: {signum.name} received")


def test_sigterm_with_a_task_that_ignores_cancellation(tmp_path: Path, home: Path) -> None:
    dag_file = write(tmp_path, "stubborn.py", STUBBORN)
    db = home / "airloop.db"
    env = {"AIRLOOP_SHUTDOWN_GRACE_SECONDS": "0.5"}
    with spawn(Call(("run", str(dag_file), "--run-id", "stubborn"), home, env)) as proc:
        running = wait_until(
            lambda: (
                states_now(db).get("ignores_cancellation") == "running" or proc.poll() is not None
            ),
            timeout=30,
        )
        assert running, states_now(db)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        # The grace period (0.5 s) plus the executor's 5 s shutdown deadline, with margin.
        try:
            stdout, _ = proc.communicate(timeout=9)
        except subprocess.TimeoutExpired:
            ti = task_instances(db, "stubborn")["ignores_cancellation"]
            pytest.fail(
                "airloop run did not exit within 9s of SIGTERM "
                f"(task instance: {ti['state']}, {ti['error']!r})"
            )
    assert proc.returncode == 143, stdout
    ti = task_instances(db, "stubborn")["ignores_cancellation"]
    assert ti["state"] == "failed"
    assert ti["error"].startswith("interrupted")
