"""The reads cost a few queries a page whatever its size (never one per DAG or run),
the next run follows the scheduler's rules, and the OpenAPI document describes every
read endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event

from airloop.api.next_run import next_run
from airloop.core.states import TaskState
from airloop.dagbag.serialized import serialize_dag
from airloop.store.runs import Store

from .reads_support import mapped_dag, mapped_run, register


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


async def test_the_dag_list_and_the_grid_take_a_few_queries(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    dags = [mapped_dag(f"dag_{i:03d}") for i in range(40)]
    await register(api_store, *dags)
    for i in range(0, 40, 3):
        await mapped_run(api_store, f"dag_{i:03d}", day=0)
        await mapped_run(api_store, f"dag_{i:03d}", day=1, states=[TaskState.SUCCESS] * 7)
    with statements(api_store) as seen:
        body = (await client.get("/api/v1/dags?limit=1000")).json()
    assert body["total"] == 40
    assert len(body["items"]) == 40
    assert len(seen) <= 5, seen
    with statements(api_store) as seen:
        grid = (await client.get("/api/v1/dags/dag_000/grid")).json()
    assert {c["task_id"]: c["total"] for c in grid["cells"][-3:]} == {
        "numbers": 1,
        "group.double": 7,
        "total": 1,
    }
    grouped = [s for s in seen if "GROUP BY" in s.upper() and "task_instance" in s]
    assert len(grouped) == 1, seen
    assert len(seen) <= 3, seen  # the DAG, the page of runs, the counts


async def test_the_openapi_document_describes_the_reads(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    base = "/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    for path in [
        "/api/v1/health",
        "/api/v1/version",
        "/api/v1/importErrors",
        "/api/v1/dags",
        "/api/v1/dags/{dag_id}",
        "/api/v1/dags/{dag_id}/structure",
        "/api/v1/dags/{dag_id}/source",
        "/api/v1/dags/{dag_id}/grid",
        "/api/v1/dags/{dag_id}/dagRuns",
        "/api/v1/dags/{dag_id}/dagRuns/{run_id}",
        base,
        base + "/{task_id}",
        base + "/{task_id}/{map_index}",
        base + "/{task_id}/tries",
        base + "/{task_id}/xcomEntries",
        base + "/{task_id}/renderedFields",
        base + "/{task_id}/logs/{try_number}",
        base + "/{task_id}/logs/{try_number}/stream",
    ]:
        get = doc["paths"][path]["get"]
        assert "200" in get["responses"], path
    schemas = doc["components"]["schemas"]
    assert {"DagSummary", "DagDetail", "DagRun", "TaskInstance", "GridOut", "LogChunk"} <= set(
        schemas
    )


def test_the_next_run_follows_the_schedule() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    daily = serialize_dag(mapped_dag("d"))
    assert next_run(daily, is_paused=False, last_interval_end=None, now=now) == datetime(
        2026, 3, 9, tzinfo=UTC
    )  # no catchup: the latest interval ended by now
    assert next_run(daily, is_paused=True, last_interval_end=None, now=now) is None
    caught = serialize_dag(mapped_dag("c", catchup=True))
    assert next_run(caught, is_paused=False, last_interval_end=None, now=now) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    after = datetime(2026, 2, 1, tzinfo=UTC)
    assert next_run(caught, is_paused=False, last_interval_end=after, now=now) == after
    every = serialize_dag(mapped_dag("e", schedule=timedelta(hours=6), catchup=True))
    assert every["schedule"] == "every 6:00:00"
    assert next_run(
        every, is_paused=False, last_interval_end=datetime(2026, 1, 2, 6, tzinfo=UTC), now=now
    ) == datetime(2026, 1, 2, 6, tzinfo=UTC)
    days = serialize_dag(mapped_dag("f", schedule=timedelta(days=2), catchup=True))
    assert days["schedule"] == "every 2 days, 0:00:00"
    assert next_run(days, is_paused=False, last_interval_end=None, now=now) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    local = serialize_dag(mapped_dag("l", schedule="0 2 * * *", timezone="Europe/Paris"))
    assert next_run(local, is_paused=False, last_interval_end=None, now=now) == datetime(
        2026, 3, 9, 1, tzinfo=UTC
    )  # 02:00 in Paris, winter time
    once = serialize_dag(mapped_dag("o", schedule="@once"))
    assert next_run(once, is_paused=False, last_interval_end=None, now=now) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert next_run(once, is_paused=False, last_interval_end=now, now=now) is None
    manual = serialize_dag(mapped_dag("m", schedule=None))
    assert next_run(manual, is_paused=False, last_interval_end=None, now=now) is None
    ended = serialize_dag(mapped_dag("x", end_date=datetime(2026, 1, 5, tzinfo=UTC), catchup=True))
    assert (
        next_run(
            ended, is_paused=False, last_interval_end=datetime(2026, 1, 6, tzinfo=UTC), now=now
        )
        is None
    )
