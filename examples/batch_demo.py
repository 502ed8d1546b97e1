"""The demo: 1,000 AWS Batch jobs of about 30 s each, on a local Batch emulator.

    make demo        # or: .venv/bin/python examples/batch_demo.py --jobs 1000 --job-seconds 30

Starts the emulator (moto's server plus job lifecycles) on 127.0.0.1, runs
examples/batch_fanout.py in this process on the async executor, shows task and job
states live, and ends with a summary: jobs by final state, wall time, CPU seconds,
peak memory and AWS API calls by action.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from airloop.dagbag.loader import load_dag_file
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AwsHub
from airloop.settings import AwsSettings, Settings

HERE = Path(__file__).resolve().parent
console = Console()


def render(engine: Engine, run: ActiveRun, hub: AwsHub | None, started: float) -> Group:
    counts = run.counts()
    tasks = "  ".join(f"{s.value} {n:,}" for s, n in sorted(counts.items()))
    jobs = Counter(hub.batch_poller().last_status.values()) if hub else Counter()
    table = Table(title=f"batch_fanout - {time.monotonic() - started:.0f}s", expand=False)
    table.add_column("what")
    table.add_column("now")
    table.add_row("task instances", tasks)
    table.add_row(
        "Batch jobs (last poll)", "  ".join(f"{s} {n:,}" for s, n in sorted(jobs.items())) or "-"
    )
    table.add_row(
        "API calls",
        "  ".join(f"{a} {n:,}" for a, n in sorted((hub.calls if hub else {}).items())) or "-",
    )
    return Group(table)


async def main(jobs: int, seconds: int, interval: float) -> int:
    home = Path(os.environ.get("AIRLOOP_HOME", HERE.parent / ".airloop"))
    dag = load_dag_file(HERE / "batch_fanout.py").dags["batch_fanout"]
    async with BatchEmulator() as emu:
        await emu.setup_batch(queue="airloop", job_definition="airloop-job")
        await emu.configure(phase_seconds=[0.5, 0.5, 2.0, 1.0])
        settings = Settings(
            home=home,
            aws=AwsSettings(
                endpoint_url=emu.endpoint_url,
                region="us-east-1",
                access_key_id="testing",
                secret_access_key="testing",
                batch_poll_interval=interval,
            ),
        )
        console.print(f"AWS Batch emulator on {emu.endpoint_url}; {jobs:,} jobs of {seconds}s")
        cpu0, started = time.process_time(), time.monotonic()
        async with Engine(settings) as engine:
            run = await engine.start_run(dag, {"jobs": jobs, "seconds": seconds})
            hub = await AwsHub.current_for(engine)
            with Live(
                render(engine, run, hub, started), console=console, refresh_per_second=2
            ) as live:
                while not run.done.done():
                    live.update(render(engine, run, hub, started))
                    await asyncio.wait({run.done}, timeout=0.5)
                live.update(render(engine, run, hub, started))
            result = run.done.result()
            final = Counter(hub.batch_poller().last_status.values())
        wall, cpu = time.monotonic() - started, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = Table(title="summary", show_header=False)
    summary.add_row("run", f"{result.state.value} ({result.run_id})")
    summary.add_row(
        "jobs by final state", ", ".join(f"{s} {n:,}" for s, n in sorted(final.items()))
    )
    summary.add_row("wall time", f"{wall:.1f} s")
    summary.add_row("airloop CPU", f"{cpu:.1f} s")
    summary.add_row("peak RSS", f"{rss:.0f} MB")
    summary.add_row("API calls", ", ".join(f"{a} {n:,}" for a, n in sorted(hub.calls.items())))
    console.print(summary)
    return 0 if result.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=int, default=30)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.jobs, args.job_seconds, args.poll_interval)))
