"""``api.auth = "none"``: loopback clients are the admin, anyone else gets 401; CSRF
still holds (the double-submit cookie), as do the security headers and the body limit.
No SQL is involved beyond opening the store, so SQLite only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from airloop.api.auth.headers import CONTENT_SECURITY_POLICY
from airloop.api.auth.sessions import CSRF_COOKIE
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.users import UserStore

from .auth_support import ADMIN_ACTION, PAGE, add_users, auth_app, client_of, csrf_of_page


@pytest_asyncio.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}")
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def app(tmp_path: Path, sqlite_store: Store) -> FastAPI:
    settings = Settings(home=tmp_path, database_url=str(sqlite_store.engine.url))
    return auth_app(settings, sqlite_store, auth="none", max_body_bytes=2048)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as c:
        yield c


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_a_loopback_client_is_the_admin(app: FastAPI, address: str) -> None:
    async with client_of(app, address=address) as client:
        me = await client.get("/api/v1/auth/me")
    assert me.json() == {"username": "admin", "role": "admin"}


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.1.20", "2001:db8::1", "not-an-ip"])
async def test_anyone_else_gets_401(app: FastAPI, address: str) -> None:
    async with client_of(app, address=address) as client:
        for response in (
            await client.get("/api/v1/auth/me"),
            await client.get("/dags"),
            await client.post(ADMIN_ACTION),
        ):
            assert response.status_code == 401
            assert "loopback only" in response.json()["detail"]


async def test_csrf_holds_without_a_session(client: httpx.AsyncClient) -> None:
    refused = await client.post(ADMIN_ACTION)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("cross-site request refused: no CSRF token")
    token = await csrf_of_page(client)
    assert client.cookies[CSRF_COOKIE] == token
    done = await client.post(ADMIN_ACTION, headers={"X-CSRF-Token": token})
    assert (done.status_code, done.json()) == (201, {"by": "admin"})
    # A page of another site cannot read the cookie: without the token, refused.
    evil = await client.post(
        ADMIN_ACTION, headers={"X-CSRF-Token": token, "Origin": "http://localhost:8080"}
    )
    assert evil.status_code == 403
    assert "Origin http://localhost:8080 is not this server" in evil.json()["detail"]
    # A page's token without its cookie (another browser) is refused too.
    async with client_of(client._transport.app) as other:  # type: ignore[attr-defined]
        stolen = await other.post(ADMIN_ACTION, headers={"X-CSRF-Token": token})
    assert stolen.status_code == 403


async def test_a_token_authenticates_its_user_on_loopback(
    client: httpx.AsyncClient, sqlite_store: Store
) -> None:
    await add_users(sqlite_store)
    secret, _ = await UserStore(sqlite_store.engine).create_token("bob", "script")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/auth/me", headers=bearer)).json()["username"] == "bob"
    assert (await client.post(ADMIN_ACTION, headers=bearer)).status_code == 403


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(PAGE),
        await client.get("/ui/static/airloop.js"),
        await client.get("/api/v1/no-such-thing"),
        await client.post(ADMIN_ACTION),  # refused by the middleware itself
    ):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"


async def test_a_body_over_the_limit_gets_413(client: httpx.AsyncClient) -> None:
    token = await csrf_of_page(client)
    headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    small = await client.post(ADMIN_ACTION, headers=headers, content=b"{}" + b" " * 2000)
    assert small.status_code == 201
    declared = await client.post(ADMIN_ACTION, headers=headers, content=b"x" * 2049)
    assert declared.status_code == 413
    assert declared.json() == {
        "detail": "request body too large: the limit is 2048 bytes (api.max_body_bytes)"
    }

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(10):
            yield b"x" * 500

    streamed = await client.post(ADMIN_ACTION, headers=headers, content=chunks())
    assert streamed.status_code == 413
    assert "content-security-policy" in streamed.headers

    async def few() -> AsyncIterator[bytes]:
        yield b"{}"

    assert (await client.post(ADMIN_ACTION, headers=headers, content=few())).status_code == 201


async def test_the_login_page_sends_on_when_there_is_no_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/login", params={"next": "/dags"})
    assert (response.status_code, response.headers["location"]) == (303, "/dags")
    assert (await client.get("/login", params={"nxt": "/"})).status_code == 400
