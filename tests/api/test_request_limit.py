"""The request limit of ``airloop standalone``: at most N requests in the app at once,
the others wait their turn (no error); streams and /metrics are never made to wait."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from airloop.api.app import create_app
from airloop.api.request_limit import RequestLimitMiddleware, is_counted
from airloop.settings import Settings
from airloop.store.runs import Store


class Gate:
    """An ASGI app whose requests all stay inside until ``open`` is set; it records how
    many were inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.open = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.arrived:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.arrived.notify_all()
        await self.open.wait()
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def wait_inside(self, n: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: self.inside >= n)


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_requests_beyond_the_limit_wait_their_turn() -> None:
    gate = Gate()
    async with _client(RequestLimitMiddleware(gate, limit=2)) as client:
        calls = [asyncio.create_task(client.get(f"/api/v1/r{i}")) for i in range(6)]
        await gate.wait_inside(2)
        for _ in range(20):  # every request had its chance to get in
            await asyncio.sleep(0)
        assert gate.inside == 2
        gate.open.set()
        answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 6
    assert [a.text for a in answers] == [f"/api/v1/r{i}" for i in range(6)]
    assert gate.most == 2


async def test_streams_and_metrics_are_not_counted() -> None:
    paths = [
        "/ui/stream/dags",
        "/ui/stream/dags/d",
        "/api/v1/dags/d/dagRuns/r/taskInstances/t/logs/1/stream",
        "/metrics",
    ]
    assert not any(is_counted(p) for p in paths)
    assert is_counted("/api/v1/dags")
    assert is_counted("/dags/d/grid")
    gate = Gate()
    async with _client(RequestLimitMiddleware(gate, limit=1)) as client:
        calls = [asyncio.create_task(client.get(p)) for p in paths]
        await gate.wait_inside(len(paths))  # all inside at once, none waiting
        gate.open.set()
        assert all(a.status_code == 200 for a in await asyncio.gather(*calls))


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestLimitMiddleware(Gate(), limit=0)


async def test_the_app_with_a_limit_answers_as_without(
    api_settings: Settings, api_store: Store
) -> None:
    app = create_app(api_settings, store=api_store, request_limit=1)
    async with _client(app) as client:
        answers = await asyncio.gather(*(client.get("/api/v1/version") for _ in range(5)))
        missing = await client.get("/api/v1/dags/nope")
    assert [a.status_code for a in answers] == [200] * 5
    assert answers[0].headers["x-frame-options"] == "DENY"
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]


async def test_pages_calling_the_api_through_the_app_do_not_wait_for_themselves(
    api_settings: Settings, api_store: Store
) -> None:
    """A page reads through the API in process (ui.api_client), several calls at once:
    with one place, the page holds it and its own calls must not queue behind it."""
    app = create_app(api_settings, store=api_store, request_limit=1)
    async with _client(app) as client, asyncio.timeout(60):
        pages = await asyncio.gather(*(client.get(p) for p in ("/", "/dags", "/", "/dags")))
    assert [p.status_code for p in pages] == [200] * 4
    assert "dag-list" in pages[1].text
