"""The ``airloop`` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from airloop import __version__
from airloop.cli import (
    api_cmd,
    connections_cmd,
    dags_cmd,
    db_cmd,
    dev_cmd,
    service_cmd,
    standalone_cmd,
    tasks_cmd,
    users_cmd,
    variables_cmd,
)
from airloop.cli.common import out, setup_logging
from airloop.cli.run_cmd import run_command

app = typer.Typer(
    name="airloop",
    help="airloop: workflows on one asyncio event loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run_command)
app.add_typer(dags_cmd.app, name="dags")
app.add_typer(tasks_cmd.app, name="tasks")
app.add_typer(db_cmd.app, name="db")
app.add_typer(dev_cmd.app, name="dev")
app.add_typer(connections_cmd.app, name="connections")
app.add_typer(variables_cmd.app, name="variables")
app.add_typer(users_cmd.app, name="users")
app.command("api-server")(api_cmd.api_server)
app.add_typer(service_cmd.scheduler_app, name="scheduler")
app.add_typer(service_cmd.runs_app, name="runs")
app.command("standalone")(standalone_cmd.standalone)
dags_cmd.app.command("trigger")(service_cmd.trigger)
dags_cmd.app.command("pause")(service_cmd.pause)
dags_cmd.app.command("unpause")(service_cmd.unpause)
dags_cmd.app.command("list-import-errors")(service_cmd.list_import_errors)
dags_cmd.app.command("backfill")(service_cmd.backfill)
tasks_cmd.app.command("clear")(service_cmd.clear)


def _version(value: bool) -> None:
    if value:
        out.print(f"airloop {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show airloop's info logs.")
    ] = False,
) -> None:
    setup_logging(verbose)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before the engine took over the signal (start-up)
        raise SystemExit(130) from None
