"""``airloop db ...``: the metadata database's schema."""

from __future__ import annotations

import asyncio

import typer

from airloop.cli.common import EXIT_FAILED, EXIT_OK, ConfigOption, bad_input, out, settings_from

app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)


@app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Create or upgrade the schema to the newest revision (safe to run twice)."""
    from airloop.store.database import migrate_database

    settings = settings_from(config)

    with bad_input():
        before, after = asyncio.run(migrate_database(settings.database_url))
    if before == after:
        out.print(f"database is current (revision {after})")
    else:
        out.print(f"database migrated from {before or 'empty'} to revision {after}")


@app.command("check")
def check_command(config: ConfigOption = None) -> None:
    """Exit 0 if the schema is current, 1 if it needs 'airloop db migrate'."""
    from airloop.store.database import database_revision, head_revision

    settings = settings_from(config)

    with bad_input():
        revision = asyncio.run(database_revision(settings.database_url))
    head = head_revision()
    if revision == head:
        out.print(f"database is current (revision {head})")
        raise typer.Exit(EXIT_OK)
    out.print(
        f"database is at {revision or 'empty'}, airloop needs {head}: run 'airloop db migrate'"
    )
    raise typer.Exit(EXIT_FAILED)
