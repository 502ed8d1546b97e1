"""What one API request costs the thread that runs the event loop (issue 13, ADR 0040).

    python benchmarks/api_cost.py [--tasks 10000] [--requests 200] [--rounds 5] [--parts]

Builds an SQLite database in a temporary folder with one DAG (``inputs >> sleeper``,
the mapped task expanded to ``tasks`` instances, all finished) as the scheduler's own
write functions record it, then calls the real app in this process through httpx's
ASGI transport and measures ``time.thread_time()`` of this thread (the loop's) over
``requests`` requests of each kind after a warm-up: CPU time, which other processes on
a shared machine do not move the way they move wall time. The client's side of each
request (httpx building it and reading the answer) runs on this thread too and is
included; SQLite's own work runs in aiosqlite's thread and is not.

Prints JSON: per request kind the loop-thread CPU per request in ms (the median of
``rounds`` rounds, and every round's figure), its status code and body size; with
``--parts``, the same for the parts of the path (see ``parts``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from airloop.api.app import create_app
from airloop.api.models import ListOf, TaskInstance, task_instance
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.core.states import DagRunState, TaskState
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.settings import Settings
from airloop.store.read_records import TaskInstanceFilter
from airloop.store.reads import Reads
from airloop.store.records import Expansion, NewTaskInstance, RunUpdate, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.service import ServiceStore
from airloop.store.ti_reads import TaskInstanceReads

DAG_ID = "api_cost"
RUN_ID = "manual__cost"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

REQUESTS = {
    "404 (no such route)": "/api/v1/no/such/route",
    "404 (unknown DAG)": "/api/v1/dags/no_such_dag",
    "health": "/api/v1/health",
    "taskInstances?limit=100": f"/api/v1/dags/{DAG_ID}/dagRuns/{RUN_ID}/taskInstances?limit=100",
    "grid": f"/api/v1/dags/{DAG_ID}/grid",
}


def build_dag() -> DAG:
    with DAG(DAG_ID, schedule=None, start_date=T0) as dag:

        @task
        def inputs() -> list[int]:
            return []

        @task
        def sleeper(i: int) -> None:
            return None

        sleeper.expand(i=inputs())
    return dag


async def prepare(store: Store, tasks: int) -> None:
    """The DAG as the scheduler's sync records it, and one finished run of it."""
    dag = build_dag()
    text, digest = dumps(serialize_dag(dag))
    await ServiceStore(store).sync_dags({DAG_ID: (dag.fileloc, None)}, [], {DAG_ID: (text, digest)})
    pk = await store.create_run(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        run_type="manual",
        logical_date=T0,
        params={},
        task_instances=[
            NewTaskInstance("inputs", "default_pool", 1, 1, 1, "PythonTaskOperator"),
            NewTaskInstance("sleeper", "default_pool", 1, 1, 1, "PythonTaskOperator"),
        ],
    )
    start = T0 + timedelta(minutes=1)
    await store.write(
        WriteBatch(
            ti_updates=[
                TIUpdate(pk, "inputs", -1, TaskState.SUCCESS, 1, start_date=start, duration=0.1)
            ]
        )
    )
    await store.write(WriteBatch(expansions=[Expansion(pk, "sleeper", tasks)]))
    batch = WriteBatch()
    for i in range(tasks):
        batch.ti_updates.append(
            TIUpdate(
                pk,
                "sleeper",
                i,
                TaskState.SUCCESS,
                1,
                start_date=start + timedelta(milliseconds=i),
                end_date=start + timedelta(milliseconds=i, seconds=6),
                duration=6.0,
            )
        )
    await store.write(batch)
    await store.write(
        WriteBatch(run_updates=[RunUpdate(pk, DagRunState.SUCCESS, start + timedelta(minutes=2))])
    )


def client_of(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def cpu_per_call(call: Callable[[], Awaitable[Any]], n: int, rounds: int) -> list[float]:
    """Loop-thread CPU per ``await call()`` (ms), one figure a round, after a warm-up
    (caches, compiled SQL)."""
    for _ in range(20):
        await call()
    figures = []
    for _ in range(rounds):
        gc.collect()
        started = time.thread_time()
        for _ in range(n):
            await call()
        figures.append((time.thread_time() - started) / n * 1000)
    return figures


def summary(figures: list[float]) -> dict[str, Any]:
    return {
        "cpu_ms_per_request": round(statistics.median(figures), 3),
        "rounds_ms": [round(f, 3) for f in figures],
    }


async def requests(app: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Each request kind through the whole app."""
    results: dict[str, Any] = {}
    async with client_of(app) as client:
        for name, path in REQUESTS.items():
            if args.only and args.only not in name:
                continue
            figures = await cpu_per_call(lambda p=path: client.get(p), args.requests, args.rounds)
            last = await client.get(path)
            results[name] = {
                "path": path,
                "status": last.status_code,
                "bytes": len(last.content),
                **summary(figures),
            }
    return results


async def _bare_404(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def parts(settings: Settings, store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """The request path taken apart: the client and transport alone (a bare ASGI app),
    FastAPI's own path, airloop's routing and middleware, each store read the measured
    requests make, and the task instance page's models and JSON."""
    # Here, not at the top: without --parts this script also measures older code.
    from airloop.api.json_out import json_response, task_instance_json

    n, rounds = args.requests, args.rounds
    out: dict[str, Any] = {}
    async with client_of(_bare_404) as client:
        out["client and transport alone (bare ASGI 404)"] = await cpu_per_call(
            lambda: client.get("/x"), n, rounds
        )
    async with client_of(FastAPI()) as client:
        out["empty FastAPI app, 404"] = await cpu_per_call(lambda: client.get("/x"), n, rounds)
    async with client_of(create_app(settings, store=store)) as client:
        out["airloop app, 404 (no such route)"] = await cpu_per_call(
            lambda: client.get("/api/v1/x"), n, rounds
        )
        out["airloop app, /api/v1/version"] = await cpu_per_call(
            lambda: client.get("/api/v1/version"), n, rounds
        )
    bare = create_app(settings, store=store)
    bare.user_middleware.clear()  # before the first request builds the stack
    async with client_of(bare) as client:
        out["airloop app without its middleware, 404"] = await cpu_per_call(
            lambda: client.get("/api/v1/x"), n, rounds
        )
    reads, tis = Reads(store), TaskInstanceReads(store)
    service = ServiceStore(store)
    every = TaskInstanceFilter(dag_id=DAG_ID, run_id=RUN_ID)
    out["store: one DAG row (reads.dag_record)"] = await cpu_per_call(
        lambda: reads.dag_record(DAG_ID), n, rounds
    )
    out["store: one run row (reads.run)"] = await cpu_per_call(
        lambda: reads.run(DAG_ID, RUN_ID), n, rounds
    )
    out["store: latest heartbeat"] = await cpu_per_call(service.latest_heartbeat, n, rounds)
    out["store: 100 task instances and the count (tis.list)"] = await cpu_per_call(
        lambda: tis.list(every, limit=100), n, rounds
    )
    out["store: grid counts (reads.grid)"] = await cpu_per_call(
        lambda: reads.grid(DAG_ID, limit=25), n, rounds
    )
    page = await tis.list(every, limit=100)

    async def models() -> bytes:
        built = ListOf[TaskInstance](items=[task_instance(r) for r in page.items], total=page.total)
        return built.model_dump_json().encode()

    async def plain() -> bytes:
        items = [task_instance_json(r) for r in page.items]
        return bytes(json_response({"items": items, "total": page.total}).body)

    out["100 task instances: pydantic models + model_dump_json"] = await cpu_per_call(
        models, n, rounds
    )
    out["100 task instances: json_out dicts + to_json"] = await cpu_per_call(plain, n, rounds)
    return {name: summary(figures) for name, figures in out.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=None, help="only the request kinds containing this")
    parser.add_argument(
        "--parts", action="store_true", help="also measure the parts of the request path"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airloop-api-cost-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'airloop.db'}")
        store = await Store.open(settings.database_url)
        try:
            await prepare(store, args.tasks)
            output: dict[str, Any] = {
                "tasks": args.tasks,
                "requests_per_round": args.requests,
                "python": sys.version.split()[0],
                "load_average": os.getloadavg()[0],
                "results": await requests(create_app(settings, store=store), args),
            }
            if args.parts:
                output["parts"] = await parts(settings, store, args)
        finally:
            await store.close()
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
