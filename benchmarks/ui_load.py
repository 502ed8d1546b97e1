"""The loop-lag target of issue 13: does a busy UI slow the scheduler it shares a loop with?

    python benchmarks/ui_load.py [--tasks 10000] [--concurrency 1000] [--task-seconds 6]
                                 [--clients 50] [--database URL] [--only loaded|baseline]
                                 [--request-limit N]

Each phase starts ``airloop standalone`` as a real process (its own AIRLOOP_HOME, an
SQLite database unless --database), triggers one run of a DAG whose mapped ``@task``
does ``await asyncio.sleep(task_seconds)`` over ``tasks`` inputs, ``concurrency`` at a
time (about tasks / concurrency * task_seconds: ~60 s by default), and samples
``/metrics`` once a second until the run ends:

- "baseline": no other clients;
- "loaded": ``clients`` concurrent HTTP clients, each polling in a loop
  ``GET /api/v1/dags/{d}/dagRuns/{r}/taskInstances?limit=100`` and
  ``GET /api/v1/dags/{d}/grid``.

Prints JSON: per phase the scheduler loop lag (``airloop_scheduler_loop_lag_seconds``,
the watchdog's latest ping, sampled each second: p50/p95/p99/max in ms; and from the
ping histogram, EVERY watchdog ping of the run (about ten a second): the bucket bound
each quantile falls under and how many pings took over 100 ms -- the one-a-second
sample is itself an HTTP request, delayed when the server is busy), the clients' request latency p50/p95 (ms), requests and their status
codes, and the run's duration (start to end, as recorded). Target: loaded p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

AIRLOOP = Path(sys.executable).parent / "airloop"
DAG_ID = "ui_load"
RUN_ID = "load"
SERVING = re.compile(r"serving the API and UI on (http://\S+)")

DAG_FILE = """
import asyncio
from airloop import DAG, task

with DAG({dag_id!r}, max_active_tasks={concurrency}) as dag:
    @task
    async def inputs() -> list[int]:
        return list(range({tasks}))

    @task
    async def sleeper(i: int) -> None:
        await asyncio.sleep({seconds})

    sleeper.expand(i=inputs())
"""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {
        "p50": ms(percentile(values, 50)),
        "p95": ms(percentile(values, 95)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values) if values else None),
        "samples": len(values),
    }


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from the Prometheus text (no labels: the unlabelled one)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if want else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def buckets(text: str, name: str) -> dict[float, float]:
    """A histogram's cumulative buckets {upper bound: count} from the Prometheus text."""
    found: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f'{name}_bucket{{le="'):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p95/p99 of the pings between two scrapes, as "at most this bucket bound" (ms):
    every ping of the run, not a sample of one a second."""
    diff = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = diff.get(float("inf"), 0.0)
    out: dict[str, Any] = {"pings": int(total)}
    for bound in (0.025, 0.05, 0.1):
        if bound in diff:
            out[f"over_{round(bound * 1000)}ms"] = int(total - diff[bound])
    for q in (50, 95, 99):
        bound = next((b for b, n in diff.items() if total and n >= q / 100 * total), None)
        if bound is None or bound == float("inf"):
            out[f"p{q}_at_most"] = None if bound is None else "above the largest bucket"
        else:
            out[f"p{q}_at_most"] = round(bound * 1000, 1)
    return out


@contextlib.asynccontextmanager
async def standalone(
    home: Path,
    database: str | None,
    block_threshold: float | None = None,
    request_limit: int | None = None,
) -> AsyncIterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOOP_")}
    env.update(AIRLOOP_HOME=str(home), AIRLOOP_SCHEDULER_POLL_INTERVAL="0.5", NO_COLOR="1")
    if request_limit is not None:
        env["AIRLOOP_API__STANDALONE_MAX_REQUESTS"] = str(request_limit)
    if database:
        env["AIRLOOP_DATABASE_URL"] = database
    if block_threshold is not None:
        env["AIRLOOP_LOOP_BLOCK_THRESHOLD"] = str(block_threshold)
    log = home / "standalone.log"
    with log.open("w") as sink:
        proc = await asyncio.create_subprocess_exec(
            str(AIRLOOP),
            "standalone",
            "--port",
            "0",
            "--dags-folder",
            str(home / "dags"),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.returncode is None:
            await asyncio.sleep(0.2)
            found = SERVING.search(log.read_text())
            url = found.group(1) if found else None
        if url is None:
            raise SystemExit(f"airloop standalone did not start:\n{log.read_text()}")
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def trigger(home: Path, database: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOOP_")}
    env.update(AIRLOOP_HOME=str(home))
    if database:
        env["AIRLOOP_DATABASE_URL"] = database
    # The scheduler records the DAG once it parsed the file: retry until it has.
    for _ in range(120):
        proc = await asyncio.create_subprocess_exec(
            str(AIRLOOP),
            "dags",
            "trigger",
            DAG_ID,
            "--run-id",
            RUN_ID,
            "--dags-folder",
            str(home / "dags"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode == 0:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"could not trigger the run: {out.decode()}")


async def run_times(database: str) -> tuple[str | None, float | None]:
    """The run's state and duration (end - start) as recorded."""
    from airloop.store.runs import Store
    from airloop.store.service import ServiceStore

    store = await Store.open(database, auto_migrate=False)
    try:
        rows = [r for r in await ServiceStore(store).runs(dag_id=DAG_ID) if r.run_id == RUN_ID]
    finally:
        await store.close()
    if not rows:
        return None, None
    row = rows[0]
    if row.start_date is None or row.end_date is None:
        return str(row.state), None
    return str(row.state), (row.end_date - row.start_date).total_seconds()


async def client_loop(
    http: httpx.AsyncClient, stop: asyncio.Event, latencies: list[float], codes: Counter[str]
) -> None:
    paths = [
        f"/api/v1/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances?limit=100",
        f"/api/v1/dags/{DAG_ID}/grid",
    ]
    i = 0
    while not stop.is_set():
        path = paths[i % 2]
        i += 1
        started = time.perf_counter()
        try:
            response = await http.get(path)
            codes[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            codes[type(exc).__name__] += 1
            await asyncio.sleep(0.1)
            continue
        latencies.append(time.perf_counter() - started)


def keep_log(log: Path, folder: str, name: str) -> None:
    kept = Path(folder)
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, kept / f"{name}.log")


async def phase(name: str, args: argparse.Namespace, clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"airloop-ui-load-{name}-") as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "ui_load.py").write_text(
            textwrap.dedent(
                DAG_FILE.format(
                    dag_id=DAG_ID,
                    tasks=args.tasks,
                    concurrency=args.concurrency,
                    seconds=args.task_seconds,
                )
            )
        )
        database = args.database or f"sqlite+aiosqlite:///{home / 'airloop.db'}"
        lags: list[float] = []
        latencies: list[float] = []
        codes: Counter[str] = Counter()
        async with standalone(home, args.database, args.block_threshold, args.request_limit) as url:
            limits = httpx.Limits(
                max_connections=clients + 5, max_keepalive_connections=clients + 5
            )
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                # The ping histogram from here on only (start-up is not the run's).
                first = (await http.get("/metrics")).text
                pings0 = metric(first, "airloop_scheduler_loop_lag_pings_seconds_count") or 0
                under0 = (
                    metric(first, "airloop_scheduler_loop_lag_pings_seconds_bucket", le="0.1") or 0
                )
                hist0 = buckets(first, "airloop_scheduler_loop_lag_pings_seconds")
                await trigger(home, args.database)
                stop = asyncio.Event()
                workers = [
                    asyncio.create_task(client_loop(http, stop, latencies, codes))
                    for _ in range(clients)
                ]
                started = time.monotonic()
                text = ""
                state: str | None = None
                try:
                    while time.monotonic() - started < args.timeout:
                        await asyncio.sleep(1.0)
                        try:
                            text = (await http.get("/metrics")).text
                        except httpx.HTTPError as exc:
                            # A kept-alive connection the server closed as it was reused.
                            codes[f"/metrics {type(exc).__name__}"] += 1
                            continue
                        lag = metric(text, "airloop_scheduler_loop_lag_seconds")
                        if lag is not None:
                            lags.append(lag)
                        done = metric(text, "airloop_active_runs") == 0 and metric(
                            text, "airloop_task_duration_seconds_count", dag_id=DAG_ID
                        )
                        if done:
                            state, _ = await run_times(database)
                            if state in ("success", "failed"):
                                break
                finally:
                    stop.set()
                    await asyncio.gather(*workers)
                pings = metric(text, "airloop_scheduler_loop_lag_pings_seconds_count") or 0
                under = (
                    metric(text, "airloop_scheduler_loop_lag_pings_seconds_bucket", le="0.1") or 0
                )
                max_lag = metric(text, "airloop_scheduler_loop_lag_max_seconds")
        state, seconds = await run_times(database)
        if args.keep_logs:
            await asyncio.to_thread(keep_log, home / "standalone.log", args.keep_logs, name)
    return {
        "clients": clients,
        "run_state": state,
        "run_seconds": None if seconds is None else round(seconds, 2),
        "loop_lag_ms": summary_ms(lags),
        "loop_lag_max_since_start_ms": None if max_lag is None else round(max_lag * 1000, 2),
        "loop_lag_all_pings_ms": bucket_quantiles(
            hist0, buckets(text, "airloop_scheduler_loop_lag_pings_seconds")
        ),
        "watchdog_pings": int(pings - pings0),
        "pings_over_100ms": int((pings - pings0) - (under - under0)),
        "requests": len(latencies),
        "request_ms": {
            k: v for k, v in summary_ms(latencies).items() if k in ("p50", "p95", "max")
        },
        "status_codes": dict(codes),
        "requests_per_s": round(len(latencies) / max(seconds or 1, 1), 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=1_000)
    parser.add_argument("--task-seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database", default=None, help="database URL (default: SQLite)")
    parser.add_argument("--only", choices=["baseline", "loaded"], default=None)
    parser.add_argument(
        "--keep-logs",
        default=None,
        help="copy each phase's standalone log (and its "
        "watchdog reports of what blocked the loop) into this folder",
    )
    parser.add_argument(
        "--block-threshold",
        type=float,
        default=None,
        help="the watchdog names what blocks the loop longer than this (s); with --keep-logs",
    )
    parser.add_argument(
        "--request-limit",
        type=int,
        default=None,
        help="api.standalone_max_requests for the server (default: the setting's default; "
        "0: no limit)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up a phase after (s)")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "task_seconds": args.task_seconds,
        "load_average": os.getloadavg()[0],
        "request_limit": args.request_limit,
    }
    if args.only in (None, "baseline"):
        result["baseline"] = await phase("baseline", args, 0)
    if args.only in (None, "loaded"):
        result["loaded"] = await phase("loaded", args, args.clients)
    result["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
