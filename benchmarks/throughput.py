"""Throughput: one DAG run of N independent no-op async tasks on the SQLite store.

    python benchmarks/throughput.py --tasks 10000 [--json] [--database URL]

Prints {"tasks", "seconds", "tasks_per_s", "peak_rss_mb"} (and a few details with --json).
``--build-only`` builds the DAG and exits: with ``valgrind --tool=callgrind`` at two
sizes, the difference of the two (full run minus build only) gives the instructions
per task of the timed part, a figure machine load does not move (docs/performance.md).

"seconds" is end to end: creating the run's rows, scheduling, running every task,
writing every state change, XCom row and log file, until the run is recorded as done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from airloop import DAG, task
from airloop.engine.engine import Engine
from airloop.settings import Settings


def build_dag(n: int) -> DAG:
    with DAG("throughput", max_active_tasks=max(n, 1)) as dag:

        @task
        async def noop() -> None:
            return None

        for _ in range(n):
            noop()
    return dag


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(
    n: int, database_url: str | None, home: Path, block_threshold: float = 0.2
) -> dict[str, object]:
    dag = build_dag(n)
    settings = Settings(
        home=home,
        loop_block_threshold=block_threshold,
        **({"database_url": database_url} if database_url else {}),
    )
    async with Engine(settings) as engine:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        result = await engine.run(dag)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        ticks = engine.scheduler.ticks
        assert engine.watchdog is not None
        blocks = sorted(engine.watchdog.blocks, key=lambda b: -b.seconds)
    if result.counts.get("success") != n:
        raise SystemExit(f"run did not succeed: {result.counts}")
    return {
        "tasks": n,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n / seconds, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_s": round(cpu, 3),
        "scheduler_ticks": ticks,
        "database": settings.database_url.split("://")[0],
        # The event loop blocked longer than --block-threshold: how often, the worst.
        "loop_blocks": len(blocks),
        "longest_blocks": [
            f"{b.seconds:.3f}s {b.cause} {b.location.split(' (')[0]}" for b in blocks[:5]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--database", default=None, help="database URL (default: SQLite in a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--block-threshold",
        type=float,
        default=0.2,
        help="report event-loop blocks longer than this (s)",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="only build the DAG and exit (for instruction counts of the untimed part)",
    )
    args = parser.parse_args()
    if args.build_only:
        t0 = time.perf_counter()
        build_dag(args.tasks)
        print(json.dumps({"tasks": args.tasks, "build_s": round(time.perf_counter() - t0, 3)}))
        return
    with tempfile.TemporaryDirectory(prefix="airloop-bench-") as tmp:
        out = asyncio.run(measure(args.tasks, args.database, Path(tmp), args.block_threshold))
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
