"""``airloop standalone``: the scheduler service and the API server on ONE event loop,
in one process (ADR 0040).

uvicorn serves as a task of the scheduler's loop (``Server.serve``), not in a thread:
the watchdog's loop lag is the lag every request and every scheduler tick sees. The
API keeps its own store (its own small connection pool), so UI reads never queue on
the scheduler's write path. The loop's signal handlers belong to the scheduler: a
SIGTERM/SIGINT stops it as ``airloop scheduler`` stops (no new run, running tasks get
the grace period); the HTTP server keeps answering while it drains (the UI shows the
runs settle), then stops with a bounded graceful shutdown of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from airloop.api.app import create_app
from airloop.api.binding import check_bind
from airloop.exceptions import AirloopError
from airloop.service.scheduler_service import SchedulerService, stop_on_signals
from airloop.settings import Settings

log = logging.getLogger(__name__)

#: Seconds open HTTP connections (a log stream, a live page) get once the server stops.
HTTP_SHUTDOWN_SECONDS = 5


class _LoopServer(uvicorn.Server):
    """uvicorn on a loop it does not own: the signals are the scheduler's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int, settings: Settings) -> socket.socket:
    """The listening socket (bound before the loop starts, so a taken port or a refused
    address fails at once with one clear line). Port 0: any free port."""
    check_bind(host, settings)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=2048)
    except OSError as exc:
        raise AirloopError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_standalone(
    settings: Settings, dags_folder: Path | None, sock: socket.socket, stop: asyncio.Event
) -> SchedulerService:
    """Serve until ``stop`` is set (or the HTTP server ends by itself); the scheduler
    drains first, then the HTTP server stops."""
    service = SchedulerService(settings, dags_folder)
    # The API's share of the loop is bounded: a busy UI must not delay the scheduler.
    app = create_app(
        settings,
        scheduler=service,
        dags_folder=dags_folder or settings.dags_folder,
        request_limit=settings.api.standalone_max_requests or None,
    )
    config = uvicorn.Config(
        app,
        lifespan="off",  # entered here: a failure raises instead of sys.exit()
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
        server_header=False,
    )
    server = _LoopServer(config)
    async with app.router.lifespan_context(app):
        web = asyncio.create_task(server.serve(sockets=[sock]), name="airloop-api-server")
        # The HTTP server ending on its own (it should not) stops the scheduler too.
        web.add_done_callback(lambda _: stop.set())
        log.info("serving the API and UI on %s", address_of(sock))
        try:
            # The scheduler's own error (another scheduler holds the lock...) propagates
            # as itself, after the HTTP server stopped.
            await service.serve(stop)
        finally:
            server.should_exit = True
            await asyncio.wait({web})  # uvicorn's shutdown is bounded (see above)
            web_error = None if web.cancelled() else web.exception()
        if web_error is not None:
            raise web_error
    return service


def run_standalone(settings: Settings, dags_folder: Path | None, host: str, port: int) -> int:
    """The command: until SIGTERM/SIGINT (a second one exits at once). Exit code 1 if
    another scheduler took the database lock."""
    sock = listen(host, port, settings)

    async def main() -> SchedulerService:
        return await serve_standalone(settings, dags_folder, sock, stop_on_signals())

    try:
        service = asyncio.run(main())
    finally:
        sock.close()
    return 1 if service.lost_lock else 0
