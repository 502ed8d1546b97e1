"""``api.auth = "password"``: users from the real database (all three backends) sign in
through the login form or send an API token; viewers cannot act; sessions, cookies,
CSRF and the same-origin check hold."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from airloop.api.auth.passwords import hash_password
from airloop.api.auth.sessions import CSRF_COOKIE, SESSION_COOKIE
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.users import UserStore, utcnow

from .auth_support import (
    ADMIN_ACTION,
    PAGE,
    SECRET_KEY,
    VIEWER_ACTION,
    add_users,
    auth_app,
    client_of,
    csrf_of_page,
    page_csrf_token,
    sign_in,
)


@pytest_asyncio.fixture
async def app(api_settings: Settings, api_store: Store) -> FastAPI:
    await add_users(api_store)
    return auth_app(api_settings, api_store, auth="password")


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as c:
        yield c


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_nobody_gets_401_from_the_api_and_the_login_page_for_pages(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "authentication required: sign in or send a bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"
    page = await client.get("/dags/x/grid", params={"limit": 5})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fdags%2Fx%2Fgrid%3Flimit%3D5"
    assert (await client.post("/dags/x")).status_code == 401
    assert (await client.get("/metrics")).status_code == 401
    login = await client.get("/login")
    assert login.status_code == 200
    assert 'id="login-form"' in login.text
    assert (await client.get("/ui/static/airloop.css")).status_code == 200
    # Open for load balancers and monitors (docs/security.md), without credentials.
    health = await client.get("/api/v1/health")
    assert health.status_code == 200, health.text
    assert health.json()["database"]["status"] == "healthy"


async def test_health_is_open_but_tells_nobody_the_host(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    from airloop.store.service import ServiceStore

    await ServiceStore(api_store).heartbeat(
        None, hostname="db-host-7", pid=42, state="running", loop_lag=0.01
    )
    response = await client.get("/api/v1/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["database"] == {"status": "healthy", "error": None}
    assert body["scheduler"]["status"] == "healthy"
    assert body["scheduler"]["hostname"] is None
    assert body["scheduler"]["pid"] is None
    assert [(s["hostname"], s["pid"]) for s in body["schedulers"]] == [(None, None)]


async def test_signing_in_sets_a_strict_httponly_session_and_me_answers(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    page = await client.get("/login", params={"next": "/dags"})
    assert "HttpOnly; SameSite=Strict" in set_cookies(page)[CSRF_COOKIE]
    form = {
        "username": "alice",
        "password": "wrong-password",
        "next": "/dags",
        "csrf_token": page_csrf_token(page.text),
    }
    wrong = await client.post("/login", data=form)
    assert wrong.status_code == 401
    assert "wrong username or password" in wrong.text
    unknown = await client.post("/login", data={**form, "username": "nobody"})
    assert unknown.status_code == 401
    assert "wrong username or password" in unknown.text
    assert SESSION_COOKIE not in client.cookies

    response = await client.post("/login", data={**form, "password": "alice-password"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dags"
    cookie = set_cookies(response)[SESSION_COOKIE]
    assert "; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200" in cookie
    assert "Secure" not in cookie
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json() == {"username": "alice", "role": "admin"}
    user = await UserStore(api_store.engine).get_user("alice")
    assert user is not None
    assert user.last_login is not None
    # Signed in, the login page sends the user on.
    again = await client.get("/login", params={"next": "/dags/x"})
    assert (again.status_code, again.headers["location"]) == (303, "/dags/x")


async def test_the_cookies_are_secure_over_https(app: FastAPI) -> None:
    async with client_of(app, base_url="https://airloop.example") as client:
        page = await client.get("/login")
        assert set_cookies(page)[CSRF_COOKIE].endswith("; HttpOnly; SameSite=Strict; Secure")
        form = {"username": "bob", "password": "bob-password"}
        response = await client.post(
            "/login", data={**form, "csrf_token": page_csrf_token(page.text)}
        )
        assert response.status_code == 303
        assert set_cookies(response)[SESSION_COOKIE].endswith(
            "; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
        )
        assert (await client.get("/api/v1/auth/me")).json()["username"] == "bob"


async def test_a_redirect_after_login_never_leaves_the_site(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    form = {"username": "bob", "password": "bob-password", "csrf_token": page_csrf_token(page.text)}
    response = await client.post("/login", data={**form, "next": "//evil.example/x"})
    assert response.headers["location"] == "/"


async def test_a_viewer_cannot_act_and_an_admin_can(app: FastAPI) -> None:
    async with client_of(app) as viewer:
        token = await sign_in(viewer, "bob")
        for path in (ADMIN_ACTION, "/api/v1/dags/x/dagRuns"):
            refused = await viewer.post(path, headers={"X-CSRF-Token": token}, json={"conf": {}})
            assert refused.status_code == 403
            assert refused.json() == {"detail": "this needs the admin role"}
        allowed = await viewer.post(VIEWER_ACTION, headers={"X-CSRF-Token": token})
        assert allowed.json() == {"by": "bob"}
    async with client_of(app) as admin:
        token = await sign_in(admin, "alice")
        done = await admin.post(ADMIN_ACTION, headers={"X-CSRF-Token": token})
        assert (done.status_code, done.json()) == (201, {"by": "alice"})


async def test_state_changing_requests_need_the_sessions_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    token = await sign_in(client, "alice")
    missing = await client.post(ADMIN_ACTION)
    assert missing.status_code == 403
    assert missing.json()["detail"].startswith("cross-site request refused: no CSRF token")
    wrong = await client.post(ADMIN_ACTION, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert "does not match" in wrong.json()["detail"]
    by_form = await client.post(ADMIN_ACTION, data={"csrf_token": token})
    assert by_form.status_code == 201
    by_multipart = await client.post(
        ADMIN_ACTION, data={"csrf_token": token}, files={"f": ("a.txt", b"x")}
    )
    assert by_multipart.status_code == 201
    same_origin = await client.post(
        ADMIN_ACTION, headers={"X-CSRF-Token": token, "Origin": "http://127.0.0.1:8080"}
    )
    assert same_origin.status_code == 201


@pytest.mark.parametrize("header", ["Origin", "Referer"])
async def test_a_cross_site_post_is_refused(client: httpx.AsyncClient, header: str) -> None:
    token = await sign_in(client, "alice")
    response = await client.post(
        ADMIN_ACTION, headers={"X-CSRF-Token": token, header: "https://evil.example/page"}
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"cross-site request refused: {header} https://evil.example/page is not this "
        "server (http://127.0.0.1:8080)"
    )
    login = await client.post(
        "/login",
        data={"username": "alice", "password": "alice-password", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403


async def test_logging_in_needs_the_forms_csrf_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"username": "alice", "password": "alice-password"})
    assert response.status_code == 403
    assert SESSION_COOKIE not in client.cookies


async def test_a_token_works_without_csrf_and_a_revoked_one_does_not(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    users = UserStore(api_store.engine)
    secret, _ = await users.create_token("alice", "ci")
    bearer = {"Authorization": f"Bearer {secret}"}
    me = await client.get("/api/v1/auth/me", headers=bearer)
    assert me.json() == {"username": "alice", "role": "admin"}
    assert "set-cookie" not in me.headers
    acted = await client.post(ADMIN_ACTION, headers=bearer)
    assert (acted.status_code, acted.json()) == (201, {"by": "alice"})

    assert await users.revoke_token("alice", "ci")
    revoked = await client.get("/api/v1/auth/me", headers=bearer)
    assert revoked.status_code == 401
    assert revoked.json() == {"detail": "the API token is unknown, expired or revoked"}
    expired, _ = await users.create_token("alice", "old", expires_at=utcnow() - timedelta(1))
    gone = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert gone.status_code == 401
    basic = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    assert "Bearer <token>" in basic.json()["detail"]


async def test_a_password_change_or_deactivation_ends_the_session(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await sign_in(client, "bob")
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    users = UserStore(api_store.engine)
    await users.set_password("bob", await hash_password("a-new-password"))
    ended = await client.get("/api/v1/auth/me")
    assert ended.status_code == 401
    assert set_cookies(ended)[SESSION_COOKIE].startswith(f"{SESSION_COOKIE}=; ")
    await sign_in(client, "alice")
    await users.set_active("alice", False)
    assert (await client.get("/api/v1/auth/me")).status_code == 401


def _signed(payload: object, age: timedelta, key: str = SECRET_KEY) -> str:
    """A session cookie as a server with ``key`` would have signed it ``age`` ago."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age.total_seconds())

    return URLSafeTimedSerializer(key, salt="airloop.session", signer=Earlier).dumps(payload)


async def test_sessions_expire_on_the_server_and_slide_while_used(app: FastAPI) -> None:
    async with client_of(app) as client:
        await sign_in(client, "alice")
        current = client.cookies[SESSION_COOKIE]
    payload = URLSafeTimedSerializer(SECRET_KEY, salt="airloop.session").loads(current)

    async def me(cookie: str) -> httpx.Response:
        async with client_of(app) as fresh:
            return await fresh.get("/api/v1/auth/me", headers={"Cookie": cookie})

    fresh = await me(f"{SESSION_COOKIE}={current}")
    assert fresh.status_code == 200
    assert SESSION_COOKIE not in set_cookies(fresh)  # signed just now: not re-signed
    used = await me(f"{SESSION_COOKIE}={_signed(payload, timedelta(minutes=5))}")
    assert used.status_code == 200  # used again: re-signed for another session_hours
    assert "Max-Age=43200" in set_cookies(used)[SESSION_COOKIE]
    expired = await me(f"{SESSION_COOKIE}={_signed(payload, timedelta(hours=13))}")
    assert expired.status_code == 401
    forged = await me(f"{SESSION_COOKIE}={_signed(payload, timedelta(0), key='another key')}")
    assert forged.status_code == 401


async def test_logging_out_ends_the_session(client: httpx.AsyncClient) -> None:
    token = await sign_in(client, "bob")
    response = await client.post("/logout", data={"csrf_token": token})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert set_cookies(response)[SESSION_COOKIE].startswith(f"{SESSION_COOKIE}=; ")
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert (await client.get(PAGE)).status_code == 303


async def test_pages_carry_the_sessions_csrf_token(client: httpx.AsyncClient) -> None:
    token = await sign_in(client, "bob")
    assert token == await csrf_of_page(client)
    assert token != client.cookies.get(CSRF_COOKIE)
