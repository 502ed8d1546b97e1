"""``airloop api-server``: the HTTP API and web UI on uvicorn, in this process's one
event loop. It binds loopback unless ``api.auth = "password"`` (ADR 0038); SIGINT and
SIGTERM stop it gracefully (open requests finish, the store closes), exit code 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator
from typing import Annotated

import typer
import uvicorn

from airloop.api.app import create_app
from airloop.api.binding import check_bind
from airloop.cli.common import ConfigOption, bad_input, settings_from
from airloop.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn's server, without re-raising the stopping signal after a graceful stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def serve(settings: Settings, host: str, port: int) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        proxy_headers=True,  # X-Forwarded-For/-Proto from a proxy on loopback only
        server_header=False,
        log_level="info",
    )
    await _Server(config).serve()


def api_server(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: api.host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=0, max=65535, help="Port (default: api.port)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the HTTP API (/api/v1) and the web UI."""
    settings = settings_from(config)
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    with bad_input("api-server"):
        check_bind(host, settings)
    asyncio.run(serve(settings, host, port))
