"""/metrics: the real app over a real database (SQLite, PostgreSQL, MariaDB), with and
without a scheduler service running in the same loop (standalone), scraped and parsed
with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from airloop.api.app import create_app
from airloop.api.metrics import app_metrics
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

MAPPED = """
import asyncio
from airloop import DAG, task

with DAG("mapped") as dag:
    @task
    async def numbers() -> list[int]:
        return list(range(5))

    @task
    async def square(x: int) -> int:
        await asyncio.sleep(0.05)
        return x * x

    square.expand(x=numbers())
"""


def scrape_samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return scrape_samples(response.text)


@pytest_asyncio.fixture
async def settings(tmp_path: Path, database_url: str) -> Settings:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mapped.py").write_text(textwrap.dedent(MAPPED))
    return Settings(
        home=tmp_path / "home",
        dags_folder=dags,
        database_url=database_url,
        scheduler_poll_interval=0.2,
        pools={"default_pool": 128, "small": 2},
    )


@pytest_asyncio.fixture
async def standalone(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The scheduler service serving in this loop, and a client of an app that has its
    own store and the service on ``app.state.scheduler`` (what ``airloop standalone``
    builds, minus the socket)."""
    service = SchedulerService(settings)
    stop = asyncio.Event()
    serving = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(60):
            await service.ready.wait()
        store = await Store.open(settings.database_url)
        try:
            app = create_app(settings, store=store, scheduler=service)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, app
        finally:
            await store.close()
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)


async def queue(settings: Settings, run_id: str) -> None:
    store = await Store.open(settings.database_url)
    try:
        await ServiceStore(store).queue_run("mapped", run_id, {}, datetime.now(UTC))
    finally:
        await store.close()


async def wait_for(
    client: httpx.AsyncClient, name: str, minimum: float, **labels: str
) -> list[Sample]:
    async with asyncio.timeout(60):
        while True:
            samples = await scrape(client)
            found = value(samples, name, **labels)
            if found is not None and found >= minimum:
                return samples
            await asyncio.sleep(0.1)


async def test_standalone_metrics_move_with_a_run(
    standalone: tuple[httpx.AsyncClient, FastAPI], settings: Settings
) -> None:
    client, app = standalone
    app_metrics(app).cache.ttl = 0  # every scrape reads the database
    before = await scrape(client)
    ticks_before = value(before, "airloop_scheduler_tick_duration_seconds_count") or 0.0
    assert value(before, "airloop_dag_runs", dag_id="mapped", state="success") is None
    # The live watchdog's lag is there from the start; the executor starts on first need.
    assert value(before, "airloop_scheduler_loop_lag_seconds") is not None
    assert value(before, "airloop_pool_slots_open", pool="default_pool") == 128.0

    await queue(settings, "r1")
    after = await wait_for(client, "airloop_dag_runs", 1, dag_id="mapped", state="success")

    assert value(after, "airloop_task_instances", dag_id="mapped", state="success") == 6
    # numbers + 5 mapped squares: six finished tries, counted under the DAG's id.
    assert value(after, "airloop_task_duration_seconds_count", dag_id="mapped") == 6
    assert (value(after, "airloop_task_duration_seconds_sum", dag_id="mapped") or 0) >= 5 * 0.05
    assert (value(after, "airloop_scheduler_tick_duration_seconds_count") or 0) > ticks_before
    assert (value(after, "airloop_db_write_duration_seconds_count") or 0) > 0
    assert value(after, "airloop_executor_slots_used", executor="async") == 0
    assert value(after, "airloop_pool_slots_used", pool="default_pool") == 0
    assert value(after, "airloop_pool_slots_open", pool="small") == 2
    assert (value(after, "airloop_scheduler_loop_lag_pings_seconds_count") or 0) > 0
    # Bounded cardinality: no label names a run or a mapped instance.
    names = {label for sample in after for label in sample.labels}
    assert names <= {"dag_id", "state", "pool", "executor", "action", "le", "scheduler_id"}, names
    assert not any("r1" in v for sample in after for v in sample.labels.values())


async def test_api_server_alone_reads_the_database_and_caches_it(
    settings: Settings,
) -> None:
    store = await Store.open(settings.database_url)
    try:
        service = ServiceStore(store)
        beat = await service.heartbeat(
            None, hostname=socket.gethostname(), pid=os.getpid(), state="running"
        )
        await service.heartbeat(beat, state="running", loop_lag=0.042)
        await service.queue_run("mapped", "q1", {}, datetime(2026, 1, 1, tzinfo=UTC))
        app = create_app(settings, store=store)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = await scrape(client)
            assert value(first, "airloop_database_up") == 1
            assert value(first, "airloop_dag_runs", dag_id="mapped", state="queued") == 1
            assert value(first, "airloop_scheduler_loop_lag_seconds") == 0.042
            assert value(first, "airloop_scheduler_heartbeat_timestamp_seconds") is not None
            # The registry: one live scheduler, its heartbeat's age on the database clock.
            assert value(first, "airloop_schedulers_alive") == 1
            age = value(first, "airloop_scheduler_heartbeat_age_seconds", scheduler_id=str(beat))
            assert age is not None
            assert 0 <= age < 3600
            # No scheduler in this process: no engine numbers (not zeros that would lie).
            assert value(first, "airloop_scheduler_tick_duration_seconds_count") is None
            assert value(first, "airloop_pool_slots_open", pool="default_pool") is None

            # Within the cache period a second scrape does not query again...
            await service.queue_run("mapped", "q2", {}, datetime(2026, 1, 2, tzinfo=UTC))
            cached = await scrape(client)
            assert value(cached, "airloop_dag_runs", dag_id="mapped", state="queued") == 1
            # ...after it, it does.
            app_metrics(app).cache.ttl = 0
            fresh = await scrape(client)
            assert value(fresh, "airloop_dag_runs", dag_id="mapped", state="queued") == 2

            bad = await client.get("/metrics", params={"format": "json"})
            assert bad.status_code == 400
            assert bad.json() == {
                "detail": "unknown query parameter(s): format (this endpoint takes: none)"
            }
    finally:
        await store.close()


async def test_each_app_has_its_own_registry(settings: Settings) -> None:
    store = await Store.open(settings.database_url)
    try:
        one, two = create_app(settings, store=store), create_app(settings, store=store)
        for app in (one, two):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                samples = await scrape(client)
                # Nothing of the process-global registry (python_gc_*, process_*) leaks in.
                assert all(s.name.startswith("airloop_") for s in samples)
        assert app_metrics(one).registry is not app_metrics(two).registry
    finally:
        await store.close()


async def test_a_database_that_cannot_be_read_is_a_metric_not_an_error(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "broken.db"
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        with sqlite3.connect(db) as conn:  # another process breaks the schema
            conn.execute("ALTER TABLE task_instance RENAME TO task_instance_gone")
        app = create_app(Settings(home=tmp_path, database_url=str(store.engine.url)), store=store)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            samples = await scrape(client)
    finally:
        await store.close()
    assert value(samples, "airloop_database_up") == 0
    assert value(samples, "airloop_dag_runs") is None


async def test_health_in_standalone_reports_the_live_loop_lag(
    tmp_path: Path, database_url: str
) -> None:
    # A long poll: the heartbeat row keeps the first pass's lag for the whole test.
    settings = Settings(
        home=tmp_path / "home",
        dags_folder=tmp_path / "dags",
        database_url=database_url,
        scheduler_poll_interval=600,
    )
    service = SchedulerService(settings)
    stop = asyncio.Event()
    serving = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(60):
            await service.ready.wait()
        engine = service.engine
        assert engine is not None
        assert engine.watchdog is not None
        # Freeze the watchdog (its thread stops) at a lag no heartbeat ever recorded.
        engine.watchdog.stop()
        engine.watchdog.last_lag = 0.321
        store = await Store.open(settings.database_url)
        try:
            recorded = await ServiceStore(store).latest_heartbeat()
            assert recorded is not None
            assert recorded.loop_lag != 0.321
            app = create_app(settings, store=store, scheduler=service)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                health = (await client.get("/api/v1/health")).json()
                samples = await scrape(client)
            alone = create_app(settings, store=store)
            transport = httpx.ASGITransport(app=alone, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                health_alone = (await client.get("/api/v1/health")).json()
        finally:
            await store.close()
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)
    assert health["scheduler"]["status"] == "healthy"
    assert health["scheduler"]["loop_lag"] == 0.321
    assert value(samples, "airloop_scheduler_loop_lag_seconds") == 0.321
    # An API server without the scheduler in its process reads the heartbeat row.
    assert health_alone["scheduler"]["loop_lag"] == recorded.loop_lag
