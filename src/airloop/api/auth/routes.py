"""``GET/POST /login``, ``POST /logout`` (pages) and ``GET /api/v1/auth/me`` (JSON)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from airloop.api.auth.middleware import safe_next
from airloop.api.auth.passwords import verify_password
from airloop.api.auth.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SessionCodec,
    new_csrf_token,
    set_cookie_header,
)
from airloop.api.deps import SettingsDep, StoreDep, ViewerDep
from airloop.api.params import refuse_unknown_params
from airloop.api.ui.templating import render
from airloop.store.users import UserStore

pages = APIRouter()
api = APIRouter()

_LOGIN_FIELDS = frozenset({"username", "password", "next", "csrf_token"})
_WRONG = "wrong username or password"


class Me(BaseModel):
    username: str
    role: str


@api.get("/auth/me", response_model=Me, summary="Who the request is authenticated as")
async def me(user: ViewerDep) -> Me:
    return Me(username=user.username, role=user.role)


@pages.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, settings: SettingsDep) -> Response:
    refuse_unknown_params(request, ("next",), "page")
    target = safe_next(request.query_params.get("next"))
    if settings.api.auth == "none" or getattr(request.state, "user", None) is not None:
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    return render(request, "login.html", next=target, error=None, username="")


@pages.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    if settings.api.auth == "none":
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "this server has no login (api.auth = 'none')"
        )
    async with request.form() as form:
        fields: dict[str, Any] = dict(form)
    unknown = sorted(set(fields) - _LOGIN_FIELDS)
    if unknown:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unknown form field {unknown[0]!r}")
    username, password = fields.get("username"), fields.get("password")
    target = safe_next(fields.get("next") if isinstance(fields.get("next"), str) else None)
    if not isinstance(username, str) or not isinstance(password, str):
        return render(
            request,
            "login.html",
            400,
            next=target,
            error="enter a username and a password",
            username=username if isinstance(username, str) else "",
        )
    users = UserStore(store.engine)
    record = await users.get_user(username)
    ok = await verify_password(record.password_hash if record else None, password)
    if record is None or not ok or not record.is_active:
        return render(request, "login.html", 401, next=target, error=_WRONG, username=username)
    await users.record_login(username)
    codec: SessionCodec = request.app.state.session_codec
    secure = request.url.scheme == "https"
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    # A fresh CSRF token with the new session (nothing planted before login survives).
    cookie = codec.dumps(username, new_csrf_token(), record.password_hash)
    max_age = int(codec.max_age.total_seconds())
    for name, value in (
        set_cookie_header(SESSION_COOKIE, cookie, secure=secure, max_age=max_age),
        set_cookie_header(CSRF_COOKIE, "", secure=secure, max_age=0),
    ):
        response.raw_headers.append((name, value))
    return response


@pages.post("/logout")
async def logout(request: Request, settings: SettingsDep) -> Response:
    secure = request.url.scheme == "https"
    target = "/login" if settings.api.auth == "password" else "/"
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    response.raw_headers.append(set_cookie_header(SESSION_COOKIE, "", secure=secure, max_age=0))
    return response
