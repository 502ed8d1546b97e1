"""The API tests: the real app over a real database (SQLite, PostgreSQL, MariaDB),
called through httpx's ASGI transport or a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from fastapi import FastAPI

from airloop.api.app import create_app
from airloop.api.auth.sessions import CSRF_COOKIE
from airloop.settings import Settings
from airloop.store.runs import Store


@pytest_asyncio.fixture
async def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path, database_url=database_url)


@pytest_asyncio.fixture
async def api_store(api_settings: Settings) -> AsyncIterator[Store]:
    store = await Store.open(api_settings.database_url)
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def app(api_settings: Settings, api_store: Store) -> FastAPI:
    return create_app(api_settings, store=api_store)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in this process. The app's lifespan is not run (the store is
    given), so this is the same app a server would serve, minus the socket. It sends the
    CSRF token with every request, as the UI's script does."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        # As the UI's script (airloop.api()): every request repeats the CSRF token that
        # the first response's double-submit cookie carries (docs/security.md).
        await c.get("/api/v1/openapi.json")
        c.headers["X-CSRF-Token"] = c.cookies[CSRF_COOKIE]
        yield c


@pytest_asyncio.fixture
async def viewer(
    tmp_path: Path, database_url: str, api_store: Store
) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as a viewer (API token) of an app with password auth."""
    from .ui_support import viewer_token

    settings = Settings(
        home=tmp_path, database_url=database_url, api={"auth": "password", "secret_key": "k" * 40}
    )
    app = create_app(settings, store=api_store)
    headers = {"Authorization": f"Bearer {await viewer_token(api_store)}"}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8080", headers=headers
    ) as c:
        yield c
