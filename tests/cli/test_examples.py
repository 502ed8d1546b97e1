"""The three shipped examples, run through the real CLI; results checked in the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support import EXAMPLES, Call, CliResult, dag_runs, query, run_many, task_instances

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    base = tmp_path_factory.mktemp("examples")
    markers = base / "markers"
    markers.mkdir()
    return run_many(
        {
            "fanout_fanin": Call(
                (
                    "run",
                    str(EXAMPLES / "fanout_fanin.py"),
                    "--param",
                    "n=50",
                    "--param",
                    "latency=0.01",
                    "--run-id",
                    "fan",
                ),
                base / "fanout_fanin",
            ),
            "mixed_retries": Call(
                ("run", str(EXAMPLES / "mixed_retries.py"), "--run-id", "mixed"),
                base / "mixed_retries",
            ),
            "sensor_wait": Call(
                (
                    "run",
                    str(EXAMPLES / "sensor_wait.py"),
                    "--param",
                    "delay=0.3",
                    "--param",
                    f"folder={markers}",
                    "--run-id",
                    "sensor",
                ),
                base / "sensor_wait",
            ),
        }
    )


def xcoms(db: Path) -> dict[str, object]:
    # Return values only (a task returning a dict[...] also stores each key, as Airflow).
    rows = query(db, "SELECT task_id, map_index, key, value FROM xcom WHERE key = 'return_value'")
    return {
        (r["task_id"] if r["map_index"] < 0 else f"{r['task_id']}[{r['map_index']}]"): json.loads(
            r["value"]
        )
        for r in rows
    }


def test_fanout_fanin_maps_over_50_items(runs: dict[str, CliResult]) -> None:
    result = runs["fanout_fanin"]
    assert result.code == 0, result.transcript
    assert "Run fanout_fanin/fan success" in result.stdout, result.transcript
    assert "success 52" in result.stdout, result.transcript

    (run,) = dag_runs(result.db)
    assert (run["dag_id"], run["run_id"], run["state"]) == ("fanout_fanin", "fan", "success")
    assert json.loads(run["params"]) == {"n": 50, "latency": 0.01}
    tis = task_instances(result.db)
    assert len(tis) == 52
    assert {ti["state"] for ti in tis.values()} == {"success"}
    assert sorted(k for k in tis if k.startswith("score[")) == sorted(
        f"score[{i}]" for i in range(50)
    )
    values = xcoms(result.db)
    assert values["extract"] == list(range(50))
    assert values["summarize"] == {"items": 50, "total": sum(i * i for i in range(50))}

    logs = query(result.db, "SELECT path FROM task_log")
    assert len(logs) == 52
    assert all(Path(r["path"]).is_file() for r in logs)


def test_mixed_retries_fails_but_cleans_up(runs: dict[str, CliResult]) -> None:
    result = runs["mixed_retries"]
    assert result.code == 1, result.transcript
    assert "Run mixed_retries/mixed failed" in result.stdout, result.transcript
    # The summary names the failed task and the first line of its error.
    failed_section = result.stdout.split("Failed tasks (1):", 1)[1]
    assert "broken  ValueError: this task always fails" in failed_section, result.transcript

    (run,) = dag_runs(result.db)
    assert run["state"] == "failed"
    tis = task_instances(result.db)
    states = {task: ti["state"] for task, ti in tis.items()}
    assert states == {
        "wait": "success",
        "blocking_io": "success",
        "flaky": "success",
        "broken": "failed",
        "publish": "upstream_failed",
        "cleanup": "success",
    }
    broken = tis["broken"]
    assert (broken["try_number"], broken["max_tries"]) == (3, 3)
    assert broken["error"] == "ValueError: this task always fails"
    assert tis["flaky"]["try_number"] == 2
    tries = query(
        result.db, "SELECT try_number FROM task_log WHERE task_id = 'broken' ORDER BY try_number"
    )
    assert [r["try_number"] for r in tries] == [1, 2, 3]
    assert xcoms(result.db)["cleanup"] == "cleaned up"


def test_sensor_wait_sees_the_marker(runs: dict[str, CliResult]) -> None:
    result = runs["sensor_wait"]
    assert result.code == 0, result.transcript
    assert "Run sensor_wait/sensor success" in result.stdout, result.transcript
    tis = task_instances(result.db)
    assert {task: ti["state"] for task, ti in tis.items()} == {
        "produce": "success",
        "wait_for_marker": "success",
        "consume": "success",
    }
    assert xcoms(result.db)["consume"] == "ready"
    # consume deleted the marker file it read.
    assert not list((result.home.parent / "markers").iterdir())


def test_the_batch_demo_runs_end_to_end(tmp_path: Path) -> None:
    """`make demo`'s script, small: its live table and summary against the emulator
    (it broke once, unnoticed, when ActiveRun was closed)."""
    env = {**os.environ, "AIRLOOP_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "batch_demo.py"), "--jobs", "20", "--job-seconds", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED 20" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
