"""``airloop api-server``: the HTTP API and web UI on uvicorn, in this process's one
event loop. It binds loopback unless ``api.auth = "password"`` (ADR 0038); SIGINT and
SIGTERM stop it gracefully (open requests finish, the store closes), exit code 0."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from airloop.cli.common import ConfigOption, bad_input, settings_from


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
    # Imported here: the web stack is not loaded by every other command.
    from airloop.api.binding import check_bind
    from airloop.api.server import serve

    settings = settings_from(config)
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    with bad_input("api-server"):
        check_bind(host, settings)
    asyncio.run(serve(settings, host, port))
