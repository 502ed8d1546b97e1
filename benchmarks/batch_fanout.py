"""N AWS Batch jobs launched and monitored by one process on one core.

    python benchmarks/batch_fanout.py --jobs 10000 --job-seconds 60 [--bare] [--json]
        [--lose-submit-answers P] [--drop-submit-connections P]

The local Batch emulator runs in its own process on the other core; this process is
pinned to core 0 (``os.sched_setaffinity``). Without ``--bare``: an airloop DAG of N
mapped BatchSubmitJobOperator tasks on the async executor, SQLite store. With
``--bare``: the same submits and batched DescribeJobs polls with plain aiobotocore and
no airloop -- the floor to compare against.

``--lose-submit-answers P`` makes the emulator execute each SubmitJob and then answer
500 with probability P; ``--drop-submit-connections P`` makes it execute and then
drop the connection. Either way the caller cannot know whether the job exists; a
correct client still creates exactly one job per task (``jobs_created == jobs``).

Prints {"jobs", "jobs_created", "succeeded", "failed", "wall_s", "cpu_s",
"peak_rss_mb", "api_calls": {action: count}, "describe_calls_per_round",
"detect_lag_p95_s", "emulator": {...}}; ``jobs_created`` is what the emulator
created; detect lag is from a job's stoppedAt to the moment its task (or the bare
loop) saw it end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from airloop import DAG
from airloop.engine.engine import Engine
from airloop.providers.aws.batch import BatchSubmitJobOperator
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AwsHub
from airloop.settings import AwsSettings, Settings

QUEUE, JOB_DEFINITION = "bench", "bench-job"


def pin(pid: int, core: int) -> None:
    """Pin a process to one core (0: this one), when there is more than one."""
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    return round(statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0], 2)


async def run_airloop(emu: BatchEmulator, jobs: int, interval: float) -> dict[str, Any]:
    with DAG("batch_fanout", max_active_tasks=jobs) as dag:
        BatchSubmitJobOperator.partial(
            task_id="job", job_queue=QUEUE, job_definition=JOB_DEFINITION
        ).expand(parameters=[{"i": str(i)} for i in range(jobs)])
    home = Path(tempfile.mkdtemp(prefix="airloop-bench-"))
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
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        hub = await AwsHub.current_for(engine)
        poller = hub.batch_poller()
        rows = await engine.store.task_instances(result.run_pk)
        xcoms = {
            x.map_index: json.loads(x.value) for x in await engine.store.xcom_values(result.run_pk)
        }
    lags = []
    for row in rows:
        summary = xcoms.get(row.map_index)
        if summary and summary.get("stopped_at") and row.end_date:
            lags.append(row.end_date.timestamp() - summary["stopped_at"] / 1000)
    return {
        "succeeded": result.counts.get("success", 0),
        "failed": result.counts.get("failed", 0),
        "api_calls": dict(hub.calls),
        "ambiguous_calls": dict(hub.ambiguous),
        "reconciled_calls": dict(hub.reconciled),
        "describe_calls_per_round": [calls for _, calls in poller.round_sizes],
        "jobs_per_round": [asked for asked, _ in poller.round_sizes],
        "lags": lags,
    }


async def run_bare(emu: BatchEmulator, jobs: int, interval: float) -> dict[str, Any]:
    from aiobotocore.session import get_session
    from botocore.config import Config

    calls: Counter[str] = Counter()
    config = Config(max_pool_connections=64, retries={"mode": "adaptive", "max_attempts": 10})
    async with get_session().create_client(
        "batch", config=config, **emu.client_settings()
    ) as batch:
        slots = asyncio.Semaphore(64)

        async def submit(i: int) -> str:
            async with slots:
                calls["SubmitJob"] += 1
                response = await batch.submit_job(
                    jobName=f"bare-{i}",
                    jobQueue=QUEUE,
                    jobDefinition=JOB_DEFINITION,
                    parameters={"i": str(i)},
                )
                return str(response["jobId"])

        ids = await asyncio.gather(*(submit(i) for i in range(jobs)))
        pending, seen_end, stopped = set(ids), {}, {}
        rounds: list[int] = []
        while pending:
            await asyncio.sleep(interval)
            chunks = [list(pending)[i : i + 100] for i in range(0, len(pending), 100)]
            rounds.append(len(chunks))
            calls["DescribeJobs"] += len(chunks)
            for response in await asyncio.gather(*(batch.describe_jobs(jobs=c) for c in chunks)):
                now = time.time()
                for job in response["jobs"]:
                    if job["status"] in ("SUCCEEDED", "FAILED"):
                        pending.discard(job["jobId"])
                        seen_end[job["jobId"]] = (job["status"], now)
                        stopped[job["jobId"]] = job.get("stoppedAt", 0) / 1000
    statuses = Counter(status for status, _ in seen_end.values())
    return {
        "succeeded": statuses["SUCCEEDED"],
        "failed": statuses["FAILED"],
        "api_calls": dict(calls),
        "describe_calls_per_round": rounds,
        "lags": [seen_end[j][1] - stopped[j] for j in seen_end if stopped.get(j)],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with BatchEmulator() as emu:
        assert emu._process is not None
        pin(emu._process.pid, 1)
        pin(0, 0)
        await emu.setup_batch(queue=QUEUE, job_definition=JOB_DEFINITION)
        throttle = {
            action: float(rate)
            for action, rate in (pair.split("=") for pair in args.throttle.split(",") if pair)
        }
        faults: dict[str, dict[str, float]] = {}
        if args.lose_submit_answers:
            faults["lose_answers"] = {"SubmitJob": args.lose_submit_answers}
        if args.drop_submit_connections:
            faults["drop_connections"] = {"SubmitJob": args.drop_submit_connections}
        await emu.configure(
            default_seconds=args.job_seconds,
            phase_seconds=[0.5, 0.5, 1.0, 1.0],
            throttle=throttle,
            **faults,
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        runner = run_bare if args.bare else run_airloop
        out = await runner(emu, args.jobs, args.poll_interval)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stats = await emu.stats()
    lags = out.pop("lags")
    return {
        "mode": "bare" if args.bare else "airloop",
        "jobs": args.jobs,
        "jobs_created": stats["jobs"],
        "job_seconds": args.job_seconds,
        "poll_interval_s": args.poll_interval,
        **{k: out[k] for k in ("succeeded", "failed", "api_calls")},
        **{k: out[k] for k in ("ambiguous_calls", "reconciled_calls") if k in out},
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "describe_calls_per_round": out["describe_calls_per_round"],
        "detect_lag_p95_s": p95(lags),
        "emulator": {
            "throttled": stats["throttled"],
            "faults": stats["faults"],
            "jobs_submitted": stats["jobs"],
            "names_submitted_more_than_once": len(stats["submitted_more_than_once"]),
        },
    }


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability is between 0 and 1, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument(
        "--throttle", default="", help='emulator throttle, e.g. "SubmitJob=50,DescribeJobs=20"'
    )
    parser.add_argument(
        "--lose-submit-answers",
        type=probability,
        default=0.0,
        metavar="P",
        help="emulator: execute SubmitJob, then answer 500, with probability P",
    )
    parser.add_argument(
        "--drop-submit-connections",
        type=probability,
        default=0.0,
        metavar="P",
        help="emulator: execute SubmitJob, then drop the connection, with probability P",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
