"""The same DAG of N tasks (half sync, half async, each sleeping 1 s) on each executor.

    python benchmarks/executors.py --tasks 1000 [--json] [--executors async,thread,process,dask]

Each executor runs in a fresh child process; the parent measures the child's wall
time, the CPU seconds of the child and everything it started (pool workers, Dask
workers), and the peak of their summed resident memory. Concurrency settings per
executor are printed with the figures: they decide the result as much as the
executor does (docs/executors.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
DAG_FILE = HERE / "dags" / "sleepers.py"

#: Settings per executor (environment variables, as a user would set them).
CONFIGS: dict[str, dict[str, str]] = {
    "async": {"AIRLOOP_USE_ASYNC": "true", "AIRLOOP_SYNC_THREADS": "256"},
    "thread": {
        "AIRLOOP_USE_ASYNC": "false",
        "AIRLOOP_SYNC_EXECUTOR": "thread",
        "AIRLOOP_THREAD_WORKERS": "256",
    },
    "process": {
        "AIRLOOP_USE_ASYNC": "false",
        "AIRLOOP_SYNC_EXECUTOR": "process",
        "AIRLOOP_PROCESS_WORKERS": "16",
    },
    "dask": {
        "AIRLOOP_USE_ASYNC": "false",
        "AIRLOOP_SYNC_EXECUTOR": "dask",
        "AIRLOOP_DASK_WORKERS": "2",
        "AIRLOOP_DASK_THREADS_PER_WORKER": "16",
    },
}


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_cpu(proc: psutil.Process, seen: dict[int, float]) -> None:
    """Remember the latest CPU seconds of every process in the tree (they may exit)."""
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass


def measure(executor: str, n: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="airloop-bench-") as home:
        env = {**os.environ, **CONFIGS[executor], "AIRLOOP_HOME": home}
        cmd = [
            sys.executable,
            "-m",
            "airloop",
            "run",
            str(DAG_FILE),
            "--param",
            f"n={n}",
            "--param",
            f"seconds={seconds}",
        ]
        started = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        peak, cpu = 0, dict[int, float]()
        while child.poll() is None:
            peak = max(peak, tree_rss(proc) if child.poll() is None else 0)
            tree_cpu(proc, cpu)
            time.sleep(0.05)  # the benchmark's own sampling loop, off any event loop
        wall = time.perf_counter() - started
        output = child.stdout.read().decode() if child.stdout else ""
    if child.returncode != 0:
        raise SystemExit(f"{executor}: airloop run exited {child.returncode}\n{output}")
    return {
        "executor": executor,
        "tasks": n,
        "wall_s": round(wall, 2),
        "cpu_s": round(sum(cpu.values()), 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "settings": CONFIGS[executor],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each task sleeps")
    parser.add_argument("--executors", default="async,thread,process,dask")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(e, args.tasks, args.seconds) for e in args.executors.split(",")]
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(
                f"{r['executor']:8} {r['tasks']} tasks  wall {r['wall_s']:7.2f}s  "
                f"cpu {r['cpu_s']:7.2f}s  peak rss {r['peak_rss_mb']:7.1f} MB"
            )


if __name__ == "__main__":
    main()
