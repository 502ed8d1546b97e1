"""The DAG list's live stream (/ui/stream/dags) on every backend: the watched DAGs'
last runs in one query, a first event with all of them, then only the DAGs that
changed. The stream is read from a real uvicorn server on loopback (httpx's ASGI
transport waits for a response to end, which a stream never does)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from airloop.core.states import DagRunState
from airloop.store.reads import Reads
from airloop.store.runs import Store

from .reads_support import mapped_dag, mapped_run, register


@pytest_asyncio.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    uv = uvicorn.Server(config)
    serving = asyncio.create_task(uv.serve(sockets=[sock]), name="test-uvicorn")
    while not uv.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        await serving
        sock.close()


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded data) of a text/event-stream, comments skipped."""
    name, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


async def test_last_runs_gives_each_dags_newest_runs_in_one_query(api_store: Store) -> None:
    await register(api_store, mapped_dag("a"), mapped_dag("b"), mapped_dag("c"))
    for day in range(12):
        await mapped_run(api_store, "a", day=day)
    await mapped_run(api_store, "b", day=0, run_state=DagRunState.FAILED)
    await mapped_run(api_store, "b", day=1, run_state=DagRunState.RUNNING)
    reads = Reads(api_store)
    runs = await reads.last_runs(["a", "b", "c"], per_dag=10)
    assert len(runs["a"]) == 10
    assert runs["a"][0].run_id == "scheduled__2026-01-12T00:00:00+00:00"
    assert runs["a"][-1].run_id == "scheduled__2026-01-03T00:00:00+00:00"
    assert [r.state for r in runs["b"]] == ["running", "failed"]
    assert runs["c"] == []
    assert runs["b"][1].logical_date is not None
    assert runs["b"][1].logical_date.utcoffset() is not None
    assert list(await reads.last_runs(["b"], per_dag=1)) == ["b"]
    assert len((await reads.last_runs(["b"], per_dag=1))["b"]) == 1
    assert await reads.last_runs([]) == {}


async def test_the_stream_sends_all_watched_dags_then_only_the_changed_ones(
    server: str, api_store: Store
) -> None:
    await register(api_store, mapped_dag("a"), mapped_dag("b"), mapped_dag("c"))
    await mapped_run(api_store, "a", day=0)
    async with (
        httpx.AsyncClient(base_url=server, timeout=30) as http,
        http.stream("GET", "/ui/stream/dags?dag_ids=a,b") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        async with asyncio.timeout(20):
            name, first = await anext(stream)
        assert name == "dags"
        assert {d["dag_id"]: [r["state"] for r in d["last_runs"]] for d in first["dags"]} == {
            "a": ["success"],
            "b": [],
        }
        await mapped_run(api_store, "c", day=0, run_state=DagRunState.FAILED)  # not watched
        await mapped_run(api_store, "b", day=0, run_state=DagRunState.FAILED)
        async with asyncio.timeout(20):
            name, second = await anext(stream)
        assert name == "dags"
        assert [d["dag_id"] for d in second["dags"]] == ["b"]
        (run,) = second["dags"][0]["last_runs"]
        assert run["state"] == "failed"
        assert run["run_id"] == "scheduled__2026-01-01T00:00:00+00:00"
        assert run["logical_date"] == "2026-01-01T00:00:00+00:00"


async def test_the_stream_refuses_what_it_does_not_take(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/stream/dags?dag=a")
    assert response.status_code == 400
    assert "unknown query parameter(s): dag" in response.json()["detail"]
    too_many = ",".join(f"d{i}" for i in range(1001))
    response = await client.get(f"/ui/stream/dags?dag_ids={too_many}")
    assert response.status_code == 400
    assert "at most 1000" in response.json()["detail"]
