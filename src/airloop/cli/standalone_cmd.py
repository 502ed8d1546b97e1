"""``airloop standalone``: the scheduler and the API/UI server in one process, one loop."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from airloop.cli.common import ConfigOption, bad_input, settings_from
from airloop.cli.service_cmd import FolderOption


def standalone(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind. Default: settings api.host (127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port to bind (0: any free port). Default: settings api.port (8080).",
        ),
    ] = None,
    dags_folder: FolderOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the scheduler and the web UI/API together until SIGTERM/SIGINT (twice: at once)."""
    from airloop.api.standalone import run_standalone

    settings = settings_from(config)
    for handler in logging.getLogger().handlers:
        handler.setLevel(min(handler.level, logging.INFO))
    with bad_input():
        raise typer.Exit(
            run_standalone(
                settings,
                dags_folder,
                settings.api.host if host is None else host,
                settings.api.port if port is None else port,
            )
        )
