"""Real local servers on loopback for the HTTP and email tests: an aiohttp app whose
routes script their answers (and record what they received), and an aiosmtpd server."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller


@dataclass
class Scripted:
    """What the test server has seen, and the answers it is told to give."""

    hits: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    posted: list[Any] = field(default_factory=list)
    #: For /flaky: how many 503s before a 200; for /ready: how many 404s first.
    failures_before_success: int = 2
    retry_after: str | None = "0"
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self, name: str) -> int:
        self.hits[name] = self.hits.get(name, 0) + 1
        return self.hits[name]


def make_app(state: Scripted) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        state.hit("echo")
        body = await request.text()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        state.hit("items")
        state.requests.append({"page": page, "headers": dict(request.headers)})
        return web.json_response(
            {"items": [f"item{page}a", f"item{page}b"], "next": page + 1 if page < 3 else None}
        )

    async def flaky(request: web.Request) -> web.Response:
        count = state.hit(f"flaky {request.method}")
        if count <= state.failures_before_success:
            headers = {} if state.retry_after is None else {"Retry-After": state.retry_after}
            return web.Response(status=503, text="busy, come back later", headers=headers)
        return web.Response(text=f"done after {count} tries")

    async def error(request: web.Request) -> web.Response:
        state.hit("error")
        detail = "field 'name' is required; " + "x" * 500 + "THE-END"
        return web.Response(status=400, text=detail)

    async def ready(request: web.Request) -> web.Response:
        count = state.hit("ready")
        if count <= state.failures_before_success:
            return web.Response(status=404, text="not there yet")
        return web.json_response({"status": "ready", "pokes": count})

    async def forbidden(request: web.Request) -> web.Response:
        state.hit("forbidden")
        return web.Response(status=403, text="no entry")

    async def receive(request: web.Request) -> web.Response:
        state.hit("receive")
        state.posted.append({"path": request.path, "json": await request.json()})
        state.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/items", items)
    app.router.add_route("*", "/flaky", flaky)
    app.router.add_get("/error", error)
    app.router.add_get("/ready", ready)
    app.router.add_get("/forbidden", forbidden)
    app.router.add_post("/services/{path:.*}", receive)
    app.router.add_post("/hooks/{path:.*}", receive)
    return app


@dataclass
class LocalHttp:
    server: TestServer
    state: Scripted

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest_asyncio.fixture
async def http_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalHttp]:
    """The scripted app on 127.0.0.1, and the connection ``http_test`` pointing at it."""
    state = Scripted()
    server = TestServer(make_app(state), host="127.0.0.1")
    await server.start_server()
    local = LocalHttp(server, state)
    monkeypatch.setenv("AIRLOOP_CONN_HTTP_TEST", local.url)
    try:
        yield local
    finally:
        await server.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message


class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts (it runs in the server's
    thread; waiters on the test's loop are woken thread-safely)."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = Mail(
            envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)
        )
        with self._lock:
            self.mails.append(mail)
            for loop, event in self._waiters:
                loop.call_soon_threadsafe(event.set)
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, within: float = 20) -> list[Mail]:
        """Wait until ``count`` mails arrived."""
        async with asyncio.timeout(within):
            while True:
                event = asyncio.Event()
                with self._lock:
                    if len(self.mails) >= count:
                        return list(self.mails)
                    waiter = (asyncio.get_running_loop(), event)
                    self._waiters.append(waiter)
                try:
                    await event.wait()
                finally:
                    with self._lock:
                        self._waiters.remove(waiter)


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """An aiosmtpd server on 127.0.0.1 and the connection ``smtp_test`` pointing at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRLOOP_CONN_SMTP_TEST",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, '
        '"extra": {"starttls": false, "from_email": "airloop@example.com"}}',
    )
    try:
        yield mailbox
    finally:
        controller.stop()
