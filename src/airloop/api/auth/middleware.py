"""Who is asking, and may they: the authentication and CSRF middleware (pure ASGI).

For every HTTP request it sets ``request.state.user`` (an ``airloop.api.deps.User``)
and ``request.state.csrf_token``, or answers itself:

- ``api.auth = "none"``: a loopback client is the admin; any other client gets 401
  (defence in depth: the server refuses to bind elsewhere, but a proxy may forward).
- ``api.auth = "password"``: the user of the ``Authorization: Bearer`` token, else of
  the session cookie; nobody → 401 JSON for ``/api/*`` (and any non-GET), a redirect to
  ``/login?next=...`` for pages. ``OPEN_PATHS`` need nobody.
- CSRF: a state-changing request (POST, PUT, PATCH, DELETE) not authenticated by a
  bearer token needs its ``Origin`` (or ``Referer``), when sent, to be this server, and
  an ``X-CSRF-Token`` header or ``csrf_token`` form field equal to the session's token
  (without a session: the ``airloop_csrf`` double-submit cookie) → else 403.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airloop.api.auth.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionCodec,
    new_csrf_token,
    parse_cookies,
    password_fingerprint,
    set_cookie_header,
    tokens_equal,
)
from airloop.api.deps import ANONYMOUS_ADMIN, User
from airloop.settings import ApiSettings
from airloop.store.users import UserRecord, UserStore

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Paths anyone may request with ``auth = "password"`` (prefixes end with "/").
OPEN_PATHS = ("/login", "/api/v1/health", "/ui/static/")
#: Not pages: nobody gets 401 here, never a redirect to the login page.
NOT_PAGES = ("/api/", "/metrics", "/ui/")
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


def is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def own_origin(scope: Scope, headers: Headers) -> str:
    scheme = scope.get("scheme", "http")
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    return normalize_origin(f"{scheme}://{host}")


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]``, lower case, without the scheme's default port."""
    parts = urlsplit(origin.strip().lower())
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return origin
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@dataclass(slots=True)
class _Outcome:
    """What the middleware decided about one request."""

    user: User | None = None
    by_token: bool = False
    session: Session | None = None
    cookies: list[tuple[bytes, bytes]] = field(default_factory=list)


async def _json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body (the body-limit middleware outside bounds it) and the messages
    that carried it, to be replayed to the app."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class AuthMiddleware:
    """Authentication, CSRF and the session cookie's renewal (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: ApiSettings, codec: SessionCodec) -> None:
        self.app = app
        self.settings = settings
        self.codec = codec

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No route uses websockets (live updates are server-sent events): refuse
            # them rather than let one past authentication.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        secure = scope.get("scheme") == "https"
        path: str = scope["path"]
        method: str = scope["method"]
        outcome = _Outcome()
        refusal = await self._authenticate(scope, headers, outcome, secure)
        if refusal is not None:
            await refusal(send, outcome.cookies)
            return
        if outcome.user is None and not is_open(path):
            await self._unauthenticated(scope, headers, send, outcome.cookies)
            return
        cookies = parse_cookies(headers.get("cookie", ""))
        # Token clients send no cookies and need no CSRF token: none is planted on them.
        csrf_token = "" if outcome.by_token else self._csrf_token(outcome, cookies, secure)
        state = scope.setdefault("state", {})
        if outcome.user is not None:
            state["user"] = outcome.user
        state["csrf_token"] = csrf_token
        if method in UNSAFE_METHODS and not outcome.by_token:
            problem, receive = await self._csrf_problem(scope, headers, receive, csrf_token)
            if problem is not None:
                await _json(send, 403, f"cross-site request refused: {problem}", outcome.cookies)
                return
        extra = outcome.cookies

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    # -- who ------------------------------------------------------------------------

    async def _authenticate(
        self, scope: Scope, headers: Headers, outcome: _Outcome, secure: bool
    ) -> Callable[[Send, list[tuple[bytes, bytes]]], Awaitable[None]] | None:
        """Fill ``outcome``; a refusal (401) to send instead of the response, or None."""
        loopback = is_loopback(scope.get("client"))
        if self.settings.auth == "none" and not loopback:
            detail = (
                "this server accepts requests from loopback only (api.auth = 'none'); "
                "set api.auth = 'password' to serve other clients"
            )
            return lambda send, cookies: _json(send, 401, detail, cookies)
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                detail = "unsupported Authorization header: send 'Authorization: Bearer <token>'"
                return lambda send, cookies: _json(send, 401, detail, [*cookies, _BEARER])
            found = await _users(scope).user_for_token(secret.strip())
            if found is None:
                detail = "the API token is unknown, expired or revoked"
                return lambda send, cookies: _json(send, 401, detail, [*cookies, _BEARER])
            outcome.user, outcome.by_token = _user(found[0]), True
            return None
        if self.settings.auth == "none":
            outcome.user = ANONYMOUS_ADMIN
            return None
        value = parse_cookies(headers.get("cookie", "")).get(SESSION_COOKIE)
        if not value:
            return None
        session = self.codec.loads(value)
        record = None if session is None else await _users(scope).get_user(session.username)
        if (
            session is None
            or record is None
            or not record.is_active
            or not tokens_equal(password_fingerprint(record.password_hash), session.fingerprint)
        ):
            outcome.cookies.append(set_cookie_header(SESSION_COOKIE, "", secure=secure, max_age=0))
            return None
        outcome.user, outcome.session = _user(record), session
        if session.stale(datetime.now(UTC)):
            outcome.cookies.append(
                set_cookie_header(
                    SESSION_COOKIE,
                    self.codec.renew(session),
                    secure=secure,
                    max_age=int(self.codec.max_age.total_seconds()),
                )
            )
        return None

    async def _unauthenticated(
        self, scope: Scope, headers: Headers, send: Send, cookies: list[tuple[bytes, bytes]]
    ) -> None:
        path: str = scope["path"]
        if path.startswith(NOT_PAGES) or scope["method"] not in ("GET", "HEAD"):
            await _json(
                send,
                401,
                "authentication required: sign in or send a bearer token",
                [
                    *cookies,
                    _BEARER,
                ],
            )
            return
        target = path + (
            f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
        )
        await _redirect(send, f"/login?next={quote(target, safe='')}", cookies)

    # -- CSRF -----------------------------------------------------------------------

    def _csrf_token(self, outcome: _Outcome, cookies: dict[str, str], secure: bool) -> str:
        if outcome.session is not None:
            return outcome.session.csrf_token
        token = cookies.get(CSRF_COOKIE, "")
        if len(token) < 32 or len(token) > 128:
            token = new_csrf_token()
            outcome.cookies.append(set_cookie_header(CSRF_COOKIE, token, secure=secure))
        return token

    async def _csrf_problem(
        self, scope: Scope, headers: Headers, receive: Receive, expected: str
    ) -> tuple[str | None, Receive]:
        """What is wrong with a state-changing request (None: nothing), and the receive
        channel the app must now read the body from."""
        origin = headers.get("origin")
        own = own_origin(scope, headers)
        if origin is not None:
            if normalize_origin(origin) != own:
                return f"Origin {origin} is not this server ({own})", receive
        else:
            referer = headers.get("referer")
            if referer and normalize_origin(referer) != own:
                return f"Referer {referer} is not this server ({own})", receive
        sent = headers.get(CSRF_HEADER)
        if sent is None:
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type in _FORM_TYPES:
                sent, receive = await self._form_token(scope, receive)
        if sent is None:
            return (
                "no CSRF token (send the page's token as the X-CSRF-Token header or the "
                "csrf_token form field, or authenticate with a bearer token)"
            ), receive
        if not tokens_equal(sent, expected):
            return "the CSRF token does not match this session (reload the page)", receive
        return None, receive

    async def _form_token(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        _, messages = await _read_body(receive)
        replayed = _replay(messages, receive)
        async with Request(scope, _replay(messages, receive)).form() as form:
            value = form.get(CSRF_FIELD)
        return (value if isinstance(value, str) else None), replayed


_BEARER = (b"www-authenticate", b"Bearer")


def _users(scope: Scope) -> UserStore:
    return UserStore(scope["app"].state.store.engine)


def _user(record: UserRecord) -> User:
    return User(record.username, record.role)
