"""``airloop connections ...``: Airflow's connection commands, on the configured sources.

``get`` and ``test`` look the id up as tasks do (environment, secrets backend, metadata
database); ``add``, ``delete``, ``list``, ``import`` and ``export`` work on the metadata
database, where passwords and extras are stored encrypted (``fernet_key``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import quote

import typer
from rich.table import Table

from airloop.cli.common import EXIT_FAILED, ConfigOption, bad_input, fail, out, settings_from
from airloop.connections.lookup import configured_sources, metastore
from airloop.connections.model import FIELDS, Connection, InvalidConnection
from airloop.connections.sources import SecretsSource, find_connection
from airloop.core.masking import redact
from airloop.runtime import in_thread
from airloop.settings import Settings

if TYPE_CHECKING:
    from airloop.connections.metastore import MetastoreSource

app = typer.Typer(help="Manage connections (and the key encrypting them).", no_args_is_help=True)

T = TypeVar("T")
MASK = "***"


def _run(settings: Settings, action: Callable[[MetastoreSource], Awaitable[T]]) -> T:
    """Run one command's coroutine with the metadata database source; errors exit 2."""

    async def go() -> T:
        db = metastore(settings)
        try:
            return await action(db)
        finally:
            await db.aclose()

    with bad_input():
        return asyncio.run(go())
    raise AssertionError("unreachable")  # pragma: no cover


def _masked(conn: Connection, show_password: bool) -> dict[str, Any]:
    data = conn.to_dict()
    if "password" in data and not show_password:
        data["password"] = MASK
    if "extra" in data and not show_password:  # extras whose key looks secret (api_key)
        data["extra"] = redact(data["extra"])
    return data


def _hide_extras(conn: Connection) -> Connection:
    """The connection with the values of its sensitive extras replaced by ``***``."""
    if not conn.extra:
        return conn
    return replace(conn, extra=json.dumps(redact(conn.extra_dejson)))


def _safe_uri(conn: Connection) -> str:
    """The URI form without the password or sensitive extras (for messages)."""
    return replace(_hide_extras(conn), password=None).get_uri()


# -- add ----------------------------------------------------------------------------


@app.command("add")
def add(
    conn_id: Annotated[str, typer.Argument(help="The connection id.")],
    conn_uri: Annotated[str | None, typer.Option("--conn-uri", help="The URI form.")] = None,
    conn_json: Annotated[str | None, typer.Option("--conn-json", help="The JSON form.")] = None,
    conn_type: Annotated[str | None, typer.Option("--conn-type")] = None,
    conn_host: Annotated[str | None, typer.Option("--conn-host")] = None,
    conn_login: Annotated[str | None, typer.Option("--conn-login")] = None,
    conn_password: Annotated[str | None, typer.Option("--conn-password")] = None,
    conn_schema: Annotated[str | None, typer.Option("--conn-schema")] = None,
    conn_port: Annotated[str | None, typer.Option("--conn-port")] = None,
    conn_extra: Annotated[str | None, typer.Option("--conn-extra", help="A JSON object.")] = None,
    conn_description: Annotated[str | None, typer.Option("--conn-description")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a connection to the metadata database (--conn-uri, --conn-json or --conn-type)."""
    forms = [
        name
        for name, value in (
            ("--conn-uri", conn_uri),
            ("--conn-json", conn_json),
            ("--conn-type", conn_type),
        )
        if value is not None
    ]
    if len(forms) != 1:
        fail(
            f"connections add {conn_id}: give exactly one of --conn-uri, --conn-json, "
            f"--conn-type (got {', '.join(forms) or 'none'})"
        )
    fields = {
        "--conn-host": conn_host,
        "--conn-login": conn_login,
        "--conn-password": conn_password,
        "--conn-schema": conn_schema,
        "--conn-port": conn_port,
        "--conn-extra": conn_extra,
    }
    given = [name for name, value in fields.items() if value is not None]
    if conn_type is None and given:
        fail(f"connections add {conn_id}: {', '.join(given)} cannot be combined with {forms[0]}")
    with bad_input():
        if conn_uri is not None:
            conn = Connection.from_uri(conn_id, conn_uri)
        elif conn_json is not None:
            conn = Connection.from_json(conn_id, conn_json)
        else:
            port: int | None = None
            if conn_port is not None:
                try:
                    port = int(conn_port)
                except ValueError:
                    fail(f"connections add {conn_id}: --conn-port {conn_port!r} is not a number")
            conn = Connection(
                conn_id=conn_id,
                conn_type=conn_type,
                description=conn_description,
                host=conn_host,
                schema=conn_schema,
                login=conn_login,
                password=conn_password,
                port=port,
                extra=conn_extra,
            )
        if conn_description is not None and conn_type is None:
            conn = replace(conn, description=conn_description)
    settings = settings_from(config)
    _run(settings, lambda db: db.add_connections([conn]))
    out.print(f"added connection {conn_id!r}: {_safe_uri(conn)}")


# -- get / list ---------------------------------------------------------------------


async def _lookup(conn_id: str, sources: list[SecretsSource]) -> tuple[Connection, str]:
    for source in sources:
        found = await source.get_connection(conn_id)
        if found is not None:
            return found, source.name
    await find_connection(conn_id, sources)  # raises ConnectionNotFound naming them
    raise AssertionError("unreachable")  # pragma: no cover


@app.command("get")
def get(
    conn_id: Annotated[str, typer.Argument(help="The connection id.")],
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or uri.")] = "table",
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the password (masked by default).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Look a connection up as a task would (environment, secrets backend, database)."""
    if output not in ("table", "json", "uri"):
        fail(f"--output {output!r}: expected table, json or uri")
    settings = settings_from(config)

    async def find(db: MetastoreSource) -> tuple[Connection, str]:
        return await _lookup(conn_id, configured_sources(settings))

    conn, source = _run(settings, find)
    data = _masked(conn, show_password)
    if output == "json":
        out.print(json.dumps({**data, "source": source}, indent=2), markup=False)
    elif output == "uri":
        if show_password:
            out.print(conn.get_uri(), markup=False)
        elif conn.password is None:
            out.print(_hide_extras(conn).get_uri(), markup=False)
        else:  # the URI with the password's place shown, not the password
            login = quote(conn.login or "", safe="")
            bare = replace(_hide_extras(conn), password=None, login=conn.login or "").get_uri()
            out.print(bare.replace(f"://{login}@", f"://{login}:{MASK}@", 1), markup=False)
    else:
        table = Table("field", "value")
        for name in ("conn_id", *FIELDS):
            value = data.get(name)
            if isinstance(value, dict):
                value = json.dumps(value)
            table.add_row(name, "" if value is None else str(value))
        table.add_row("source", source)
        out.print(table)


@app.command("list")
def list_command(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    config: ConfigOption = None,
) -> None:
    """The connections in the metadata database (passwords never shown)."""
    if output not in ("table", "json"):
        fail(f"--output {output!r}: expected table or json")
    settings = settings_from(config)
    conns = _run(settings, lambda db: db.connections())
    if output == "json":
        out.print(json.dumps([_masked(c, False) for c in conns], indent=2), markup=False)
        return
    table = Table("conn_id", "conn_type", "host", "port", "schema", "login", "description")
    for c in conns:
        table.add_row(
            c.conn_id,
            c.conn_type or "",
            c.host or "",
            "" if c.port is None else str(c.port),
            c.schema or "",
            c.login or "",
            c.description or "",
        )
    out.print(table)


# -- delete -------------------------------------------------------------------------


@app.command("delete")
def delete(
    conn_id: Annotated[str, typer.Argument(help="The connection id.")],
    config: ConfigOption = None,
) -> None:
    """Delete a connection from the metadata database."""
    settings = settings_from(config)
    if not _run(settings, lambda db: db.delete_connection(conn_id)):
        fail(f"connection {conn_id!r} is not in the metadata database")
    out.print(f"deleted connection {conn_id!r}")


# -- export / import ----------------------------------------------------------------


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="A .json file to write ('-': stdout).")],
    config: ConfigOption = None,
) -> None:
    """Write the metadata database's connections as JSON ({conn_id: fields}), secrets
    in clear: keep the file safe."""
    if str(file) != "-" and file.suffix.lower() != ".json":
        fail(f"{file}: connections export writes JSON only (a .json file, or '-')")
    settings = settings_from(config)
    conns = _run(settings, lambda db: db.connections())
    data = {c.conn_id: {k: v for k, v in c.to_dict().items() if k != "conn_id"} for c in conns}
    text = json.dumps(data, indent=2) + "\n"
    if str(file) == "-":
        out.print(text, markup=False, end="")
        return
    write_secret_file(file, text)
    out.print(f"exported {len(conns)} connection(s) to {file}")


def write_secret_file(file: Path, text: str) -> None:
    """Write an export (secrets in clear) readable by its owner only (mode 0600)."""
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)  # a file that existed keeps no wider mode
            fh.write(text)
    except OSError as exc:
        fail(f"{file}: cannot write: {exc.strerror}")


def read_json_file(file: Path, what: str) -> Any:
    if file.suffix.lower() != ".json":
        fail(f"{file}: {what} import reads JSON only (a .json file)")
    try:
        text = file.read_text()
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{file}: not valid JSON ({error.msg} at line {error.lineno})")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A .json file: {conn_id: fields or URI}.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace connections that exist.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add the connections of a JSON file (all or none; existing ids are errors unless
    --overwrite)."""
    data = read_json_file(file, "connections")
    if not isinstance(data, dict):
        fail(f"{file}: expected a JSON object {{conn_id: fields or URI}}")
    conns: list[Connection] = []
    for conn_id, value in data.items():
        try:
            if isinstance(value, str):
                conns.append(Connection.from_uri(conn_id, value))
            elif isinstance(value, dict):
                conns.append(Connection.from_json(conn_id, value))
            else:
                fail(f"{file}: connection {conn_id!r} must be an object or a URI string")
        except InvalidConnection as exc:
            fail(f"{file}: {exc}")
    settings = settings_from(config)
    _run(settings, lambda db: db.add_connections(conns, overwrite=overwrite))
    out.print(f"imported {len(conns)} connection(s) from {file}")


# -- test ---------------------------------------------------------------------------

_DATABASE_TYPES = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
}


def _database_url(conn: Connection, driver: str) -> str:
    auth = ""
    if conn.login or conn.password:
        auth = quote(conn.login or "", safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        auth += "@"
    port = f":{conn.port}" if conn.port else ""
    return f"{driver}://{auth}{conn.host or '127.0.0.1'}{port}/{quote(conn.schema or '', safe='')}"


async def _test_http(conn: Connection) -> str:
    import aiohttp

    host = conn.host or ""
    if "://" in host:
        url = host
    else:
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}/"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        if response.status >= 400:
            raise ConnectionTestFailed(f"{url} answered HTTP {response.status}")
        return f"{url} answered HTTP {response.status}"


class ConnectionTestFailed(Exception):
    pass


async def _test(conn: Connection) -> str:
    from airloop.store.connections import ping_database

    kind = (conn.conn_type or "").lower()
    if kind in ("http", "https"):
        return await _test_http(conn)
    if kind in _DATABASE_TYPES:
        await ping_database(_database_url(conn, _DATABASE_TYPES[kind]))
        return f"connected to {kind} at {conn.host or '127.0.0.1'}{f':{conn.port}' if conn.port else ''}"
    if kind == "sqlite":
        path = conn.host or conn.schema or ""
        if not path or not await in_thread(Path(path).is_file):
            raise ConnectionTestFailed(f"no SQLite database file at {path!r} (the host field)")
        await ping_database(f"sqlite+aiosqlite:///{path}?mode=ro")
        return f"opened SQLite database {path}"
    raise ConnectionTestFailed(
        f"connection type {conn.conn_type!r} has no test (tested: http, postgres, mysql, sqlite)"
    )


@app.command("test")
def test(
    conn_id: Annotated[str, typer.Argument(help="The connection id.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 10.0,
    config: ConfigOption = None,
) -> None:
    """Check the connection's system answers (http, postgres, mysql, sqlite); exit 1 if not."""
    if not timeout > 0:  # also NaN
        fail(f"--timeout {timeout:g}: must be more than 0 seconds")
    settings = settings_from(config)

    async def go(db: MetastoreSource) -> tuple[Connection, str]:
        return await _lookup(conn_id, configured_sources(settings))

    conn, _ = _run(settings, go)

    async def attempt() -> str:
        async with asyncio.timeout(timeout):
            return await _test(conn)

    try:
        message = asyncio.run(attempt())
    except ConnectionTestFailed as exc:
        fail(f"connection {conn_id!r}: {exc}", EXIT_FAILED)
    except TimeoutError:
        fail(f"connection {conn_id!r}: no answer within {timeout:g}s", EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - the system's own error, said in one line
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fail(f"connection {conn_id!r}: {line}", EXIT_FAILED)
    out.print(f"connection {conn_id!r} works: {message}")


# -- the fernet key -----------------------------------------------------------------


@app.command("generate-fernet-key")
def generate_fernet_key() -> None:
    """Print a new key for the fernet_key setting (AIRLOOP_FERNET_KEY)."""
    from airloop.connections.crypto import generate_key

    out.print(generate_key(), markup=False)


@app.command("rotate-fernet-key")
def rotate_fernet_key(config: ConfigOption = None) -> None:
    """Re-encrypt every connection secret and variable with the first fernet key.

    Rotation: set fernet_key to "NEW,OLD", run this, then set it to "NEW".
    """
    settings = settings_from(config)
    conns, variables = _run(settings, lambda db: db.rotate())
    out.print(f"re-encrypted {conns} connection(s) and {variables} variable(s) with the first key")
