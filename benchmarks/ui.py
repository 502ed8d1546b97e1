"""The API and web UI at scale: server time per endpoint and the grid's drawing time.

    python benchmarks/ui.py [--quick] [--database-url URL] [--requests N] [--no-browser]

Builds a database fast, with bulk inserts through ``airloop.store.schema``: 1,000 DAGs
(``dag`` and ``serialized_dag`` rows, each with a few runs) and one DAG ``big`` with 25
runs x (10,000 mapped task instances + 50 other tasks), plus a 50 MB log file for one
try. Then starts the API server (``airloop api-server``, in its own process on
loopback; no scheduler) and times repeated requests with httpx: p50/p95 per
endpoint, against the targets of ADR 0037. Last, chromium (Playwright) opens the grid
page and reports the time until ``#grid`` has all its cells (``performance.now()``).

``--quick``: 100 DAGs, 5 runs x 1,000 mapped instances, a 5 MB log, fewer requests.
SQLite in a temporary folder by default; ``--database-url`` takes an EMPTY PostgreSQL
or MariaDB database (the schema is created there).

Prints one JSON object: {"setup": {...}, "endpoints": {name: {"p50_ms", "p95_ms",
"target_p95_ms", "ok", "status"}}, "browser": {...}}. Exit status 0 even when a target
is missed (``ok`` says so); 1 when the server does not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop import DAG, Param, task
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.executors.task_logs import log_path
from airloop.store import schema
from airloop.store.database import migrate_database, open_engine

CHROMIUM = os.environ.get("AIRLOOP_BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIG = "big"
MAPPED = "work"
CHUNK = 5_000


# -- building the database ----------------------------------------------------------


def small_dag(i: int, folder: Path) -> DAG:
    with DAG(
        f"dag_{i:04d}",
        schedule="@daily" if i % 3 == 0 else None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        tags=[f"team{i % 7}", "bench"],
        params={"size": Param(10, type="integer", minimum=1)},
        description=f"benchmark DAG {i}",
    ) as dag:

        @task
        def extract() -> int:
            return 1

        @task
        def transform(x: int) -> int:
            return x

        @task
        def load(x: int) -> None:
            return None

        load(transform(extract()))
    dag.fileloc = str(folder / f"dag_{i:04d}.py")
    return dag


def big_dag(others: int, folder: Path) -> DAG:
    with DAG(BIG, tags=["bench"], description="25 runs of 10,000 mapped instances") as dag:

        @task
        def items() -> list[int]:
            return []

        @task
        def work(item: int) -> int:
            return item

        @task
        def step() -> None:
            return None

        numbers = items()
        previous: Any = work.expand(item=numbers)
        for _ in range(others - 1):
            current = step()
            previous >> current
            previous = current
    dag.fileloc = str(folder / "big.py")
    return dag


def chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


async def insert_many(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    for part in chunks(rows):
        await conn.execute(insert(table), part)


def dag_row(dag: DAG, now: datetime) -> dict[str, Any]:
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "is_paused": False,
        "is_active": True,
        "schedule": None if dag.schedule is None else str(dag.schedule),
        "last_parsed": now,
    }


def serialized_row(dag: DAG, now: datetime) -> dict[str, Any]:
    text, digest = dumps(serialize_dag(dag))
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "data": text,
        "dag_hash": digest,
        "updated_at": now,
    }


def run_row(dag_id: str, n: int, state: str, start: datetime) -> dict[str, Any]:
    logical = start + timedelta(days=n)
    return {
        "dag_id": dag_id,
        "run_id": f"manual__{logical.isoformat()}",
        "run_type": "manual",
        "state": state,
        "logical_date": logical,
        "params": {},
        "created_at": logical,
        "start_date": logical,
        "end_date": None if state == "running" else logical + timedelta(minutes=5),
        "note": None,
        "data_interval_start": logical,
        "data_interval_end": logical,
    }


def ti_row(
    run_pk: int, task_id: str, map_index: int, state: str, at: datetime, operator: str
) -> dict[str, Any]:
    done = state in ("success", "failed", "upstream_failed", "skipped")
    return {
        "dag_run_id": run_pk,
        "task_id": task_id,
        "map_index": map_index,
        "state": state,
        "try_number": 1 if state != "none" else 0,
        "max_tries": 1,
        "pool": "default_pool",
        "pool_slots": 1,
        "priority_weight": 1,
        "operator": operator,
        "queued_at": at,
        "start_date": at if state != "none" else None,
        "end_date": at + timedelta(seconds=3) if done else None,
        "duration": 3.0 if done else None,
        "hostname": "bench",
        "executor": "async",
        "updated_at": at,
    }


async def run_pks(conn: AsyncConnection, dag_id: str) -> list[tuple[int, str]]:
    t = schema.dag_run
    rows = await conn.execute(
        select(t.c.id, t.c.run_id).where(t.c.dag_id == dag_id).order_by(t.c.logical_date)
    )
    return [(int(r.id), str(r.run_id)) for r in rows]


def write_log(path: Path, size: int) -> int:
    """A log file of ``size`` bytes of numbered lines, written in 1 MB blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = 0
    written = 0
    with path.open("w") as f:
        while written < size:
            block = []
            block_size = 0
            while block_size < 1_048_576:
                text = (
                    f"[2026-12-02T04:00:00+0000] INFO work: processed item {line}: "
                    f"rows={line * 7 % 1000} ok\n"
                )
                block.append(text)
                block_size += len(text)
                line += 1
            f.write("".join(block))
            written += block_size
    return written


async def build(url: str, home: Path, sizes: dict[str, int], fresh_server: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    if fresh_server:
        await migrate_database(url)
    engine = await open_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=400)
    folder = home / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)
    try:
        dags = [small_dag(i, folder) for i in range(sizes["dags"])]
        big = big_dag(sizes["others"], folder)
        async with engine.begin() as conn:
            await insert_many(conn, schema.dag, [dag_row(d, now) for d in [*dags, big]])
            await insert_many(
                conn, schema.serialized_dag, [serialized_row(d, now) for d in [*dags, big]]
            )
            runs = []
            for dag in dags:
                for n in range(sizes["small_runs"]):
                    state = rng.choice(["success", "success", "failed"])
                    runs.append(run_row(dag.dag_id, n, state, start))
            await insert_many(conn, schema.dag_run, runs)
        # The small DAGs' task instances: one per task and run.
        t = schema.dag_run
        async with engine.begin() as conn:
            rows = await conn.execute(select(t.c.id, t.c.state).where(t.c.dag_id != BIG))
            tis = [
                ti_row(int(r.id), task_id, -1, str(r.state), start, "PythonTaskOperator")
                for r in rows
                for task_id in ("extract", "transform", "load")
            ]
            await insert_many(conn, schema.task_instance, tis)
        # The big DAG: the last run is running, the others are done.
        big_runs = sizes["big_runs"]
        async with engine.begin() as conn:
            await insert_many(
                conn,
                schema.dag_run,
                [
                    run_row(BIG, n, "running" if n == big_runs - 1 else "success", start)
                    for n in range(big_runs)
                ],
            )
        pks = []
        async with engine.connect() as conn:
            pks = await run_pks(conn, BIG)
        others = [t.task_id for t in big.tasks if t.task_id != MAPPED]
        ti_count = 0
        for n, (pk, _run_id) in enumerate(pks):
            last = n == len(pks) - 1
            at = start + timedelta(days=n)
            mapped_states = (
                [
                    rng.choice(["success", "success", "running", "queued", "failed"])
                    for _ in range(sizes["mapped"])
                ]
                if last
                else ["success"] * sizes["mapped"]
            )
            rows = [
                ti_row(pk, MAPPED, i, state, at, "PythonTaskOperator")
                for i, state in enumerate(mapped_states)
            ]
            rows += [
                ti_row(pk, task_id, -1, "none" if last else "success", at, "PythonTaskOperator")
                for task_id in others
            ]
            async with engine.begin() as conn:
                await insert_many(conn, schema.task_instance, rows)
            ti_count += len(rows)
        # One try's 50 MB log.
        log_run_pk, log_run_id = pks[0]
        path = Path(log_path(home / "logs", BIG, log_run_id, MAPPED, 0, 1))
        log_bytes = await asyncio.to_thread(write_log, path, sizes["log_bytes"])
        async with engine.begin() as conn:
            await conn.execute(
                insert(schema.task_log).values(
                    dag_run_id=log_run_pk,
                    task_id=MAPPED,
                    map_index=0,
                    try_number=1,
                    path=str(path),
                    created_at=now,
                )
            )
        # The planner's statistics, as the servers gather them soon after a bulk load
        # (PostgreSQL's autovacuum, InnoDB's automatic recalculation).
        backend = engine.url.get_backend_name()
        if backend in ("postgresql", "mysql"):
            statement = (
                "ANALYZE"
                if backend == "postgresql"
                else "ANALYZE TABLE dag, serialized_dag, dag_run, task_instance"
            )
            async with engine.connect() as conn:
                await conn.exec_driver_sql(statement)
                await conn.commit()
    finally:
        await engine.dispose()
    return {
        "dags": sizes["dags"] + 1,
        "big_runs": big_runs,
        "big_task_instances": ti_count,
        "log_bytes": log_bytes,
        "runs": [run_id for _, run_id in pks],
        "tasks": [t.task_id for t in big.tasks],
        "build_s": round(time.perf_counter() - t0, 2),
    }


# -- the server and the measurements --------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(home),
        "AIRLOOP_DATABASE_URL": url,
        "AIRLOOP_API__PORT": str(port),
        "AIRLOOP_API__AUTH": "none",
    }
    env.pop("AIRLOOP_CONFIG", None)
    out = home / "server.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "airloop", "api-server", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(f"{base}/api/v1/version", timeout=2)
            return process, base, out
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the API server did not start:\n{out.read_text()[-3000:]}")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(client: httpx.Client, path: str, count: int, target_ms: float) -> dict[str, Any]:
    times: list[float] = []
    status = 0
    size = 0
    for i in range(count + 2):
        t0 = time.perf_counter()
        response = client.get(path)
        body = response.content
        elapsed = (time.perf_counter() - t0) * 1000
        status, size = response.status_code, len(body)
        if i >= 2:  # two warm-up requests
            times.append(elapsed)
    p95 = quantile(times, 0.95)
    return {
        "path": path,
        "status": status,
        "bytes": size,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(p95, 1),
        "target_p95_ms": target_ms,
        "ok": status == 200 and p95 < target_ms,
    }


def endpoints(setup: dict[str, Any]) -> dict[str, tuple[str, float]]:
    first, last = setup["runs"][0], setup["runs"][-1]
    base = f"/dags/{BIG}/runs"
    api = f"/api/v1/dags/{BIG}/dagRuns"
    return {
        "dags_page": ("/dags", 200),
        "dags_api": ("/api/v1/dags", 200),
        "dags_api_search": ("/api/v1/dags?search=dag_09&limit=100", 200),
        "grid_api": (f"/api/v1/dags/{BIG}/grid?limit=25", 300),
        "grid_page": (f"/dags/{BIG}/grid", 300),
        "mapped_page": (f"{base}/{last}/tasks/{MAPPED}", 100),
        "mapped_api_100": (f"{api}/{last}/taskInstances?task_id={MAPPED}&limit=100", 100),
        "ti_page_50mb_log": (f"{base}/{first}/tasks/{MAPPED}/0", 1000),
        "log_tail_api_50mb": (f"{api}/{first}/taskInstances/{MAPPED}/logs/1?map_index=0", 1000),
    }


def browser_grid(base: str, setup: dict[str, Any], repeats: int) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        return {"error": f"chromium not found at {CHROMIUM}"}
    from playwright.sync_api import Error, sync_playwright

    expected = len(setup["runs"]) * len(setup["tasks"])
    probe = """expected => {
        const grid = document.querySelector('#grid');
        if (!grid) return false;
        const cells = grid.querySelectorAll('[data-run-id][data-task-id]').length;
        return (grid.dataset.drawn !== undefined || cells >= expected) ? performance.now() : false;
    }"""
    times: list[float] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            for _ in range(repeats + 1):
                page.goto(f"{base}/dags/{BIG}/grid", wait_until="commit")
                try:
                    handle = page.wait_for_function(probe, arg=expected, timeout=30_000)
                except Error as exc:
                    return {"error": f"#grid never drew its {expected} cells: {exc}"[:300]}
                times.append(float(handle.json_value()))
        finally:
            context.close()
    times = times[1:]  # the first load warms the browser's cache of static files
    p95 = quantile(times, 0.95)
    return {
        "grid_drawn_p50_ms": round(statistics.median(times), 1),
        "grid_drawn_p95_ms": round(p95, 1),
        "target_ms": 1500,
        "cells": expected,
        "ok": p95 < 1500,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (CI, smoke test)")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL/MariaDB database")
    parser.add_argument("--requests", type=int, help="requests per endpoint (30; quick 10)")
    parser.add_argument("--no-browser", action="store_true", help="skip the chromium timing")
    args = parser.parse_args()
    sizes = (
        {"dags": 100, "small_runs": 3, "big_runs": 5, "mapped": 1_000, "others": 50}
        | {"log_bytes": 5 * 1_048_576}
        if args.quick
        else {"dags": 1_000, "small_runs": 3, "big_runs": 25, "mapped": 10_000, "others": 50}
        | {"log_bytes": 50 * 1_048_576}
    )
    count = args.requests or (10 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="airloop-ui-bench-") as tmp:
        home = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{home / 'airloop.db'}"
        setup = asyncio.run(build(url, home, sizes, fresh_server=bool(args.database_url)))
        process, base, _out = start_server(home, url)
        try:
            results = {}
            with httpx.Client(base_url=base, timeout=60) as client:
                for name, (path, target) in endpoints(setup).items():
                    results[name] = measure(client, path, count, target)
            browser = (
                {"skipped": "--no-browser"}
                if args.no_browser
                else browser_grid(base, setup, 3 if args.quick else 10)
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    report = {
        "database": url.split(":", 1)[0],
        "setup": {k: v for k, v in setup.items() if k not in ("runs", "tasks")},
        "requests_per_endpoint": count,
        "endpoints": results,
        "browser": browser,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
