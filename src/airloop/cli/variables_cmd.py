"""``airloop variables ...``: Airflow's variable commands.

``get`` looks the key up as tasks do (environment, secrets backend, metadata database);
``set``, ``delete``, ``list``, ``import`` and ``export`` work on the metadata database,
where values are stored encrypted (``fernet_key``).
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from airloop.cli.common import ConfigOption, bad_input, fail, out, settings_from
from airloop.cli.connections_cmd import read_json_file, write_secret_file
from airloop.connections.lookup import configured_sources, metastore
from airloop.connections.sources import find_variable
from airloop.connections.variable import VariableNotFound, _looked_in
from airloop.settings import Settings

if TYPE_CHECKING:
    from airloop.connections.metastore import MetastoreSource

app = typer.Typer(help="Manage variables.", no_args_is_help=True)


def _run(settings: Settings, action: Any) -> Any:
    async def go() -> Any:
        db = metastore(settings)
        try:
            return await action(db)
        finally:
            await db.aclose()

    with bad_input():
        return asyncio.run(go())
    raise AssertionError("unreachable")  # pragma: no cover


@app.command("set")
def set_command(
    key: Annotated[str, typer.Argument(help="The variable's key.")],
    value: Annotated[str, typer.Argument(help="Its value (text; JSON with --serialize-json).")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    serialize_json: Annotated[
        bool,
        typer.Option("--serialize-json", "-j", help="VALUE is JSON: checked, stored as JSON."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a variable in the metadata database (encrypted)."""
    if not key:
        fail("variables set: the key must not be empty")
    if serialize_json:
        try:
            value = json.dumps(json.loads(value), indent=2)
        except json.JSONDecodeError as error:
            fail(f"variables set {key}: --serialize-json but VALUE is not JSON ({error.msg})")
    settings = settings_from(config)
    _run(settings, lambda db: db.set_variables([(key, value, description)]))
    out.print(f"variable {key!r} set")


@app.command("get")
def get(
    key: Annotated[str, typer.Argument(help="The variable's key.")],
    default: Annotated[
        str | None, typer.Option("--default", help="Printed when the key is not found.")
    ] = None,
    deserialize_json: Annotated[
        bool,
        typer.Option(
            "--deserialize-json", "-j", help="Parse the value as JSON (and pretty-print)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print a variable, looked up as a task would (environment, backend, database)."""
    settings = settings_from(config)

    async def find(db: MetastoreSource) -> str | None:
        return await find_variable(key, configured_sources(settings))

    value: str | None = _run(settings, find)
    if value is None:
        if default is not None:
            out.print(default, markup=False)
            return
        with bad_input():
            raise VariableNotFound(key, _looked_in(key, settings))
    if deserialize_json:
        try:
            value = json.dumps(json.loads(value), indent=2)
        except json.JSONDecodeError as error:
            fail(f"variable {key!r} is not JSON ({error.msg}); get it without --deserialize-json")
    out.print(value, markup=False)


@app.command("list")
def list_command(config: ConfigOption = None) -> None:
    """The variables in the metadata database: keys and descriptions (not values)."""
    settings = settings_from(config)
    rows = _run(settings, lambda db: db.variables())
    table = Table("key", "description")
    for key, _value, description in rows:
        table.add_row(key, description or "")
    out.print(table)


@app.command("delete")
def delete(
    key: Annotated[str, typer.Argument(help="The variable's key.")],
    config: ConfigOption = None,
) -> None:
    """Delete a variable from the metadata database."""
    settings = settings_from(config)
    if not _run(settings, lambda db: db.delete_variable(key)):
        fail(f"variable {key!r} is not in the metadata database")
    out.print(f"deleted variable {key!r}")


class OnExisting(StrEnum):
    overwrite = "overwrite"
    fail = "fail"
    skip = "skip"


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A .json file: {key: value}.")],
    action_on_existing_key: Annotated[
        OnExisting,
        typer.Option("--action-on-existing-key", "-a", help="overwrite, fail or skip."),
    ] = OnExisting.overwrite,
    config: ConfigOption = None,
) -> None:
    """Set the variables of a JSON file (all or none). Non-string values are stored as
    JSON text (read them with deserialize_json)."""
    data = read_json_file(file, "variables")
    if not isinstance(data, dict):
        fail(f"{file}: expected a JSON object {{key: value}}")
    rows = [
        (str(key), value if isinstance(value, str) else json.dumps(value, indent=2), None)
        for key, value in data.items()
    ]
    settings = settings_from(config)

    async def go(db: MetastoreSource) -> int:
        todo = rows
        if action_on_existing_key is OnExisting.skip:
            existing = {key for key, _, _ in await db.variables()}
            todo = [r for r in rows if r[0] not in existing]
        await db.set_variables(todo, overwrite=action_on_existing_key is not OnExisting.fail)
        return len(todo)

    count = _run(settings, go)
    out.print(f"imported {count} variable(s) from {file} ({len(rows) - count} skipped)")


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="A .json file to write ('-': stdout).")],
    config: ConfigOption = None,
) -> None:
    """Write the metadata database's variables as JSON ({key: value}; values that are
    JSON are written as JSON), in clear: keep the file safe."""
    if str(file) != "-" and file.suffix.lower() != ".json":
        fail(f"{file}: variables export writes JSON only (a .json file, or '-')")
    settings = settings_from(config)
    rows = _run(settings, lambda db: db.variables())
    data: dict[str, Any] = {}
    for key, value, _ in rows:
        try:
            data[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            data[key] = value
    text = json.dumps(data, indent=2) + "\n"
    if str(file) == "-":
        out.print(text, markup=False, end="")
        return
    write_secret_file(file, text)
    out.print(f"exported {len(rows)} variable(s) to {file}")
