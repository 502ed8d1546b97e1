"""What one API request costs the thread that runs the event loop (issue 13, ADR 0040).

    python benchmarks/api_cost.py [--tasks 10000] [--requests 200] [--rounds 5]

Builds an SQLite database in a temporary folder with one DAG (``inputs >> sleeper``,
the mapped task expanded to ``tasks`` instances, all finished) as the scheduler's own
write functions record it, then calls the real app in this process through httpx's
ASGI transport and measures ``time.thread_time()`` of this thread (the loop's) over
``requests`` requests of each kind after a warm-up: CPU time, which other processes on
a shared machine do not move the way they move wall time. The client's side of each
request (httpx building it and reading the answer) runs on this thread too and is
included; SQLite's own work runs in aiosqlite's thread and is not.

Prints JSON: per request kind the loop-thread CPU per request in ms (the median of
``rounds`` rounds, and every round's figure), its status code and body size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from airloop.api.app import create_app
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.core.states import DagRunState, TaskState
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.settings import Settings
from airloop.store.records import Expansion, NewTaskInstance, RunUpdate, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

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


async def measure(client: httpx.AsyncClient, path: str, requests: int) -> tuple[float, int, int]:
    """Loop-thread CPU per request (s) over ``requests`` requests; status; body size."""
    gc.collect()
    started = time.thread_time()
    for _ in range(requests):
        response = await client.get(path)
    spent = time.thread_time() - started
    return spent / requests, response.status_code, len(response.content)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=None, help="only the request kinds containing this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airloop-api-cost-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'airloop.db'}")
        store = await Store.open(settings.database_url)
        try:
            await prepare(store, args.tasks)
            app = create_app(settings, store=store)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8080"
            ) as client:
                results: dict[str, Any] = {}
                for name, path in REQUESTS.items():
                    if args.only and args.only not in name:
                        continue
                    await measure(client, path, 20)  # warm-up: caches, compiled SQL
                    rounds = []
                    for _ in range(args.rounds):
                        per, status, size = await measure(client, path, args.requests)
                        rounds.append(per)
                    results[name] = {
                        "path": path,
                        "status": status,
                        "bytes": size,
                        "cpu_ms_per_request": round(statistics.median(rounds) * 1000, 3),
                        "rounds_ms": [round(r * 1000, 3) for r in rounds],
                    }
        finally:
            await store.close()
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "requests_per_round": args.requests,
                "python": sys.version.split()[0],
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
