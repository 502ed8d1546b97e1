"""The scheduler service with D DAG files of T tasks each, all triggered at once.

    python benchmarks/scheduler.py --dags 100 --tasks 100 [--json]

Writes D files into a temporary DAG folder, starts the service in this process (SQLite
store), times parsing the folder, queues one run of every DAG (as ``airloop dags
trigger`` does) and waits until all runs have succeeded. Prints {"dags", "tasks_per_dag",
"parse_s", "finish_s", "tasks_per_s", "cpu_s", "peak_rss_mb"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from airloop.service.dagfolder import DagFolder
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

DAG_FILE = """
from airloop import DAG, task

with DAG("bench_{i}") as dag:
    @task
    async def noop() -> None:
        return None

    for _ in range({tasks}):
        noop()
"""


async def measure(dags: int, tasks: int, root: Path) -> dict[str, object]:
    folder = root / "dags"
    folder.mkdir()
    for i in range(dags):
        (folder / f"bench_{i}.py").write_text(DAG_FILE.format(i=i, tasks=tasks))
    t0 = time.perf_counter()
    state, _ = await DagFolder(folder, 60).refresh(everything=True)
    parse_s = time.perf_counter() - t0
    assert len(state.dags) == dags, state.errors

    settings = Settings(home=root / "home", dags_folder=folder, scheduler_poll_interval=0.2)
    service = SchedulerService(settings)
    stop = asyncio.Event()
    serving = asyncio.create_task(service.serve(stop))
    await service.ready.wait()
    db = root / "home" / "airloop.db"
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        now = datetime.now(UTC)
        for i in range(dags):
            await ServiceStore(store).queue_run(f"bench_{i}", "bench", {}, now)
        while True:
            runs = await ServiceStore(store).runs(state="success")
            if len(runs) == dags:
                break
            await asyncio.sleep(0.05)  # the benchmark watches the database from outside
        finish_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
    finally:
        await store.close()
        stop.set()
        await serving
    return {
        "dags": dags,
        "tasks_per_dag": tasks,
        "parse_s": round(parse_s, 2),
        "finish_s": round(finish_s, 2),
        "tasks_per_s": round(dags * tasks / finish_s, 1),
        "cpu_s": round(cpu_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airloop-bench-") as tmp:
        out = asyncio.run(measure(args.dags, args.tasks, Path(tmp)))
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
