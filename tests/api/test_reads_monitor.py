"""Health, version and import errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import create_async_engine

from airloop import __version__
from airloop.api.app import create_app
from airloop.settings import Settings
from airloop.store.db_clock import db_later
from airloop.store.records import ImportErrorRow
from airloop.store.runs import Store
from airloop.store.schema import scheduler_heartbeat
from airloop.store.service import ServiceStore


async def test_health_follows_the_schedulers_heartbeat(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    body = (await client.get("/api/v1/health")).json()
    assert body["database"] == {"status": "healthy", "error": None}
    assert body["scheduler"]["status"] == "unknown"
    assert body["scheduler"]["latest_heartbeat"] is None

    service = ServiceStore(api_store)
    beat = await service.heartbeat(
        None,
        hostname="box",
        pid=42,
        state="running",
        loop_lag=0.002,
        running_tasks=3,
        active_runs=1,
    )
    scheduler = (await client.get("/api/v1/health")).json()["scheduler"]
    assert scheduler["status"] == "healthy"
    assert (scheduler["hostname"], scheduler["pid"], scheduler["running_tasks"]) == ("box", 42, 3)
    assert scheduler["loop_lag"] == 0.002
    assert scheduler["active_runs"] == 1
    assert scheduler["latest_heartbeat"].endswith("+00:00")
    # A heartbeat without an expiry (no registry lease yet): alive by its age.
    listed = (await client.get("/api/v1/health")).json()["schedulers"]
    assert [(s["id"], s["hostname"], s["running_tasks"]) for s in listed] == [(beat, "box", 3)]

    async with api_store.engine.begin() as conn:
        await conn.execute(
            update(scheduler_heartbeat).values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert (await client.get("/api/v1/health")).json()["scheduler"]["status"] == "unhealthy"
    await service.heartbeat(beat, state="stopped")
    assert (await client.get("/api/v1/health")).json()["scheduler"]["status"] == "unhealthy"


async def test_health_lists_every_live_scheduler(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    """Several schedulers on one database (ADR 0041): each alive while its expiry,
    on the database's clock, is ahead; ``scheduler`` is the newest live one."""
    now = datetime.now(UTC)
    dialect = api_store.engine.dialect
    base = {"started_at": now, "heartbeat_at": now, "state": "running", "mode": "ha"}
    async with api_store.engine.begin() as conn:
        for host, pid, expiry, owned in (
            ("a", 1, 60, 4),
            ("b", 2, -5, 3),  # expired: a fresh heartbeat does not make it alive
            ("c", 3, 60, 5),
        ):
            await conn.execute(
                insert(scheduler_heartbeat).values(
                    **base,
                    hostname=host,
                    pid=pid,
                    expires_at=db_later(dialect, expiry),
                    dags_owned=owned,
                    running_tasks=pid,
                )
            )
    body = (await client.get("/api/v1/health")).json()
    assert body["scheduler"]["status"] == "healthy"
    assert (body["scheduler"]["hostname"], body["scheduler"]["pid"]) == ("c", 3)
    live = body["schedulers"]
    assert [(s["hostname"], s["pid"], s["dags_owned"], s["mode"]) for s in live] == [
        ("a", 1, 4, "ha"),
        ("c", 3, 5, "ha"),
    ]
    assert all(0 <= s["heartbeat_age"] < 3600 for s in live)
    assert live[0]["latest_heartbeat"].endswith("+00:00")

    async with api_store.engine.begin() as conn:
        await conn.execute(update(scheduler_heartbeat).values(state="stopped"))
    body = (await client.get("/api/v1/health")).json()
    assert body["scheduler"]["status"] == "unhealthy"
    assert body["schedulers"] == []


async def test_an_unreachable_database_is_unhealthy(tmp_path: Path) -> None:
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:9/none")
    store = Store(engine)
    app = create_app(Settings(home=tmp_path), store=store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            body = (await client.get("/api/v1/health")).json()
    finally:
        await store.close()
    assert body["database"]["status"] == "unhealthy"
    assert body["database"]["error"]
    assert "\n" not in body["database"]["error"]
    assert body["scheduler"]["status"] == "unknown"


async def test_version_and_import_errors(client: httpx.AsyncClient, api_store: Store) -> None:
    assert (await client.get("/api/v1/version")).json() == {"version": __version__}
    await ServiceStore(api_store).sync_dags(
        {},
        [
            ImportErrorRow("/dags/b.py", 3, "SyntaxError: invalid syntax", "Traceback ..."),
            ImportErrorRow("/dags/a.py", None, "ImportError: no module named x"),
        ],
    )
    body = (await client.get("/api/v1/importErrors")).json()
    assert body["total"] == 2
    assert body["items"][0] == {
        "fileloc": "/dags/a.py",
        "line": None,
        "message": "ImportError: no module named x",
        "traceback": None,
    }
    page = (await client.get("/api/v1/importErrors", params={"offset": 1})).json()
    assert [e["fileloc"] for e in page["items"]] == ["/dags/b.py"]
    assert (await client.get("/api/v1/version?x=1")).status_code == 400
