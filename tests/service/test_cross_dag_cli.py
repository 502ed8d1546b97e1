"""Cross-DAG operators as a user runs them: the real ``airloop scheduler`` process, runs
queued with ``airloop dags trigger`` from other processes, states read from its database.

The waits have an hour's poke_interval: they end because the scheduler process runs
both DAGs and wakes its waiting tasks itself (ADR 0036).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_service_cli import cli, until

DAGS = """
from airloop import DAG, task
from airloop.operators import TriggerDagRunOperator
from airloop.sensors import ExternalTaskSensor

with DAG("b", params={"fail": False}) as b:
    @task
    def work(params) -> str:
        if params["fail"]:
            raise ValueError("b was asked to fail")
        return "b done"
    work()

for name, fail in (("a_ok", False), ("a_bad", True)):
    with DAG(name) as a:
        TriggerDagRunOperator(
            task_id="trigger_b",
            trigger_dag_id="b",
            trigger_run_id="from_{{ dag.dag_id }}",
            conf={"fail": fail},
            wait_for_completion=True,
            poke_interval=3600,
        )

with DAG("d") as d:
    @task
    def produce() -> str:  # a sync task: in the thread pool
        return "d done"
    produce()

with DAG("c") as c:
    ExternalTaskSensor(
        task_id="wait_for_d",
        external_dag_id="d",
        external_task_id="produce",
        poke_interval=3600,
    )
"""


def run_states(db: Path) -> dict[tuple[str, str], str]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT dag_id, run_id, state FROM dag_run").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {(d, r): s for d, r, s in rows}


def heartbeat(db: Path) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return bool(conn.execute("SELECT count(*) FROM scheduler_heartbeat").fetchone()[0])
        except sqlite3.OperationalError:
            return False


@pytest.mark.timeout(300)  # several processes on a shared machine
def test_trigger_and_external_task_sensor_under_the_scheduler(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cross.py").write_text(textwrap.dedent(DAGS))
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home"),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.2",
    }
    db = tmp_path / "home" / "airloop.db"
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log_file:
        service = subprocess.Popen(
            [sys.executable, "-m", "airloop", "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            until(lambda: heartbeat(db), within=60)
            # The sensor's run first, then the run it waits for, at the same date.
            when = "2026-05-04T03:00"
            for dag_id, *more in (
                ("a_ok",),
                ("a_bad",),
                ("c", "--logical-date", when),
                ("d", "--logical-date", when),
            ):
                done = cli(env, "dags", "trigger", dag_id, "--run-id", "r1", *more)
                assert done.returncode == 0, done.stderr

            expected = {
                ("a_ok", "r1"): "success",
                ("a_bad", "r1"): "failed",
                ("b", "from_a_ok"): "success",
                ("b", "from_a_bad"): "failed",
                ("c", "r1"): "success",
                ("d", "r1"): "success",
            }

            def finished() -> bool:
                states = run_states(db)
                return all(states.get(k) in ("success", "failed") for k in expected)

            until(finished, within=120)
            assert {k: run_states(db)[k] for k in expected} == expected
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
    assert service.returncode == 0
    said = log_path.read_text()
    assert "run from_a_ok of b finished: success" in said
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        ((error,),) = conn.execute(
            "SELECT ti.error FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id "
            "WHERE r.dag_id = 'a_bad'"
        ).fetchall()
    assert "b failed with failed state failed (run from_a_bad)" in error
