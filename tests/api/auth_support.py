"""Helpers of the authentication tests: an app with a test-only admin action, users in
the real database, and signing in through the real login form."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from airloop.api.app import create_app
from airloop.api.auth.passwords import hash_password
from airloop.api.deps import AdminDep, ViewerDep
from airloop.api.ui.templating import render
from airloop.settings import ApiSettings, Settings
from airloop.store.runs import Store
from airloop.store.users import UserStore

#: A test-only route that needs the admin role (the write branch's routes use AdminDep
#: the same way); it echoes who acted and the JSON or form it got.
ADMIN_ACTION = "/api/v1/test-only/admin-action"
VIEWER_ACTION = "/api/v1/test-only/viewer-action"
#: Triggering a run (routes/dag_actions.py): admin only.
TRIGGER_ROUTE = "/api/v1/dags/{dag_id}/dagRuns"
#: A test-only page (base.html, as every UI page).
PAGE = "/test-only/page"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
ROLES = {"alice": "admin", "bob": "viewer"}
SECRET_KEY = "test-secret-key"


def auth_app(settings: Settings, store: Store, **api: Any) -> FastAPI:
    settings = settings.model_copy(update={"api": ApiSettings(**{"secret_key": SECRET_KEY, **api})})
    app = create_app(settings, store=store)

    async def admin_action(user: AdminDep) -> dict[str, str]:
        return {"by": user.username}

    async def viewer_action(user: ViewerDep) -> dict[str, str]:
        return {"by": user.username}

    async def page(request: Request) -> HTMLResponse:
        return render(request, "base.html")

    app.add_api_route(ADMIN_ACTION, admin_action, methods=["POST"], status_code=201)
    if not any(getattr(r, "path", None) == TRIGGER_ROUTE for r in app.routes):
        # Until the write branch's trigger route is merged: the same path and role.
        app.add_api_route(TRIGGER_ROUTE, admin_action, methods=["POST"], status_code=201)
    app.add_api_route(PAGE, page, methods=["GET"])
    app.add_api_route(VIEWER_ACTION, viewer_action, methods=["POST"])
    return app


async def add_users(store: Store) -> None:
    users = UserStore(store.engine)
    for name, password in PASSWORDS.items():
        await users.create_user(name, await hash_password(password), ROLES[name])


def client_of(
    app: FastAPI, address: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8080"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def page_csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html
    )
    assert match, html
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, next_url: str = "/") -> str:
    """Sign in through the login form; the session's CSRF token (from a page)."""
    page = await client.get("/login", params={"next": next_url})
    assert page.status_code == 200, page.text
    response = await client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORDS[username],
            "next": next_url,
            "csrf_token": page_csrf_token(page.text),
        },
    )
    assert response.status_code == 303, response.text
    return await csrf_of_page(client)


async def csrf_of_page(client: httpx.AsyncClient) -> str:
    """The CSRF token a page gives its scripts (``<meta name="csrf-token">``)."""
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    return page_csrf_token(page.text)
