"""`make demo-ui`'s script and `benchmarks/ui.py`, small, so neither rots unnoticed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_in_the_ui_runs_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AIRLOOP_HOME": str(tmp_path / "home")}
    env.pop("AIRLOOP_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "batch_demo_ui.py"),
            *("--jobs", "20", "--job-seconds", "1", "--poll-interval", "0.5"),
            *("--port", str(port), "--exit-when-done"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"watch it: http://127.0.0.1:{port}/dags/batch_fanout/grid" in done.stdout
    assert "ended: success" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    with socket.socket() as s:  # the server it started is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_ui_benchmark_answers_every_endpoint(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "ui.py"),
            *("--quick", "--requests", "1", "--no-browser"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["setup"]["big_task_instances"] == 5 * (1_000 + 50)
    statuses = {name: e["status"] for name, e in report["endpoints"].items()}
    assert set(statuses.values()) == {200}, statuses
