"""``airloop connections ...`` and ``airloop variables ...``: the installed script,
real databases (SQLite, PostgreSQL, MariaDB), a real HTTP server on loopback.

Each CLI start costs seconds of CPU on a loaded machine: tests stay small, and the
timeout guard is wider than the suite's default (it is no assertion about speed).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from airloop.connections.crypto import generate_key

from .support import CliResult, airloop, query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEY = generate_key()
ENV = {"AIRLOOP_FERNET_KEY": KEY}
PG_URI = "postgres://etl:s3cret@db.local:5432/wh?sslmode=require"


def ok(result: CliResult) -> str:
    assert result.code == 0, result.transcript
    return result.stdout


def bad(result: CliResult, code: int = 2) -> str:
    """The one-line error of a refused command (no traceback)."""
    assert result.code == code, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert "Traceback" not in result.stderr
    return result.err_lines[0]


def cli(*args: str | Path, home: Path, env: dict[str, str] | None = None) -> CliResult:
    return airloop(*args, home=home, env=ENV if env is None else env)


def test_add_and_get_with_the_password_masked(home: Path) -> None:
    added = ok(
        cli("connections", "add", "pg", "--conn-uri", PG_URI, "--conn-description", "wh", home=home)
    )
    assert "s3cret" not in added
    assert "postgres://etl@db.local:5432/wh" in added
    table = ok(cli("connections", "get", "pg", home=home))
    assert "s3cret" not in table
    assert "***" in table
    assert "metadata database" in table
    shown = json.loads(
        ok(cli("connections", "get", "pg", "-o", "json", "--show-password", home=home))
    )
    assert (shown["password"], shown["extra"], shown["description"]) == (
        "s3cret",
        {"sslmode": "require"},
        "wh",
    )
    uri = ok(cli("connections", "get", "pg", "-o", "uri", home=home)).strip()
    assert uri == "postgres://etl:***@db.local:5432/wh?sslmode=require"
    # Encrypted at rest: the file holds no secret.
    rows = query(home / "airloop.db", "SELECT * FROM connection WHERE conn_id = 'pg'")
    assert rows[0]["is_encrypted"] == 1
    assert "s3cret" not in rows[0]["password"]


def test_add_forms_list_and_delete(home: Path) -> None:
    ok(
        cli(
            "connections", "add", "api", "--conn-type", "http", "--conn-host", "api.local",
            "--conn-port", "8080", "--conn-password", "pw", "--conn-extra", '{"timeout": 5}',
            home=home,
        )
    )  # fmt: skip
    ok(cli("connections", "add", "js", "--conn-json", '{"conn_type": "s3"}', home=home))
    listed = ok(cli("connections", "list", "-o", "json", home=home))
    assert [c["conn_id"] for c in json.loads(listed)] == ["api", "js"]
    assert json.loads(listed)[0]["password"] == "***"
    assert "already exists" in bad(
        cli("connections", "add", "js", "--conn-uri", "http://x", home=home)
    )
    ok(cli("connections", "delete", "js", home=home))
    assert "'js' is not in the metadata database" in bad(
        cli("connections", "delete", "js", home=home)
    )


def test_bad_input_is_one_line_and_exit_2(home: Path, tmp_path: Path) -> None:
    cases = {
        ("connections", "add", "x"): "give exactly one of --conn-uri, --conn-json, --conn-type",
        ("connections", "add", "x", "--conn-uri", "a://b", "--conn-host", "h"): (
            "--conn-host cannot be combined with --conn-uri"
        ),
        ("connections", "add", "x", "--conn-uri", "nonsense"): "not a connection URI",
        ("connections", "add", "x", "--conn-type", "http", "--conn-port", "eighty"): (
            "--conn-port 'eighty' is not a number"
        ),
        ("connections", "import", str(tmp_path / "c.yaml")): "reads JSON only",
        ("connections", "add", "x", "--conn-json", '{"password": 12345678}'): (
            "connection 'x': password must be a string, got int"
        ),
        ("connections", "test", "x", "--timeout", "0"): "--timeout 0: must be more than 0 seconds",
        ("variables", "set", "", "v"): "variables set: the key must not be empty",
    }
    for args, expected in cases.items():
        assert expected in bad(cli(*args, home=home)), args


def test_a_missing_or_malformed_key(home: Path) -> None:
    assert "no fernet key to encrypt/decrypt connection 'x'" in bad(
        cli("connections", "add", "x", "--conn-uri", "http://u:pw@h", home=home, env={})
    )
    assert "fernet_key (AIRLOOP_FERNET_KEY): key 1 is not a Fernet key" in bad(
        cli("variables", "list", home=home, env={"AIRLOOP_FERNET_KEY": "short"})
    )


def test_variables(home: Path) -> None:
    ok(cli("variables", "set", "region", "eu-west-3", "--description", "where", home=home))
    ok(cli("variables", "set", "cfg", '{"n": 2}', "-j", home=home))
    assert json.loads(ok(cli("variables", "get", "cfg", "-j", home=home))) == {"n": 2}
    assert "variable 'nope' not found" in bad(cli("variables", "get", "nope", home=home))
    listed = ok(cli("variables", "list", home=home))
    assert "region" in listed
    assert "eu-west-3" not in listed  # keys and descriptions, not values
    assert all(
        "eu-west-3" not in r["val"] for r in query(home / "airloop.db", "SELECT val FROM variable")
    )
    ok(cli("variables", "delete", "region", home=home))
    assert ok(cli("variables", "get", "region", "--default", "d", home=home)) == "d\n"


def test_key_rotation(home: Path) -> None:
    old, new = KEY, generate_key()
    ok(cli("variables", "set", "region", "eu-west-3", home=home))
    ok(cli("connections", "add", "c", "--conn-uri", "http://u:pw@h", home=home))
    both = {"AIRLOOP_FERNET_KEY": f"{new},{old}"}
    out = ok(cli("connections", "rotate-fernet-key", home=home, env=both))
    assert "re-encrypted 1 connection(s) and 1 variable(s)" in out
    only_new = {"AIRLOOP_FERNET_KEY": new}
    got = json.loads(
        ok(cli("connections", "get", "c", "-o", "json", "--show-password", home=home, env=only_new))
    )
    assert got["password"] == "pw"
    assert bad(cli("variables", "get", "region", home=home)) == (
        "error: the fernet key cannot decrypt variable 'region': wrong key?"
    )


def test_connections_export_and_import(home: Path, tmp_path: Path) -> None:
    conns = tmp_path / "conns.json"
    conns.write_text(
        json.dumps(
            {
                "pg": {"conn_type": "postgres", "host": "db", "password": "pw", "extra": {"a": 1}},
                "web": "https://user:tok@example.org:8443/path",
            }
        )
    )
    assert "imported 2 connection(s)" in ok(cli("connections", "import", conns, home=home))
    assert "already exists" in bad(cli("connections", "import", conns, home=home))
    ok(cli("connections", "import", conns, "--overwrite", home=home))
    exported_file = tmp_path / "out.json"
    exported_file.write_text("{}")
    exported_file.chmod(0o644)
    ok(cli("connections", "export", exported_file, home=home))
    assert exported_file.stat().st_mode & 0o077 == 0  # secrets in clear: owner only
    exported = json.loads(exported_file.read_text())
    assert exported["pg"] == {
        "conn_type": "postgres",
        "host": "db",
        "password": "pw",
        "extra": {"a": 1},
    }
    assert (exported["web"]["password"], exported["web"]["port"]) == ("tok", 8443)


def test_variables_export_and_import(home: Path, tmp_path: Path) -> None:
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"s": "text", "obj": {"k": [1, 2]}, "n": 3}))
    assert "imported 3 variable(s)" in ok(cli("variables", "import", variables, home=home))
    assert "0 variable(s)" in ok(cli("variables", "import", variables, "-a", "skip", home=home))
    assert "already exists" in bad(cli("variables", "import", variables, "-a", "fail", home=home))
    exported = tmp_path / "out.json"
    ok(cli("variables", "export", exported, home=home))
    assert exported.stat().st_mode & 0o077 == 0  # values in clear: owner only
    assert json.loads(exported.read_text()) == {"s": "text", "obj": {"k": [1, 2]}, "n": 3}


def test_a_server_database(server_database_url: str, home: Path) -> None:
    env = {**ENV, "AIRLOOP_DATABASE_URL": server_database_url}
    ok(cli("connections", "add", "s", "--conn-uri", "http://u:pw@h:1", home=home, env=env))
    ok(cli("variables", "set", "v", "value", home=home, env=env))
    got = json.loads(
        ok(cli("connections", "get", "s", "-o", "json", "--show-password", home=home, env=env))
    )
    assert got["password"] == "pw"
    assert ok(cli("variables", "get", "v", home=home, env=env)).strip() == "value"
    assert not (home / "airloop.db").exists()


def test_connections_test_databases(home: Path) -> None:
    env = {
        **ENV,
        "AIRLOOP_CONN_PG": "postgres://root@127.0.0.1:5432/test",
        "AIRLOOP_CONN_MY": "mysql://root@127.0.0.1:3306/test",
        "AIRLOOP_CONN_CLOSED": "postgres://root@127.0.0.1:1/test",
    }
    assert "works: connected to postgres" in ok(
        cli("connections", "test", "pg", home=home, env=env)
    )
    assert "works: connected to mysql" in ok(cli("connections", "test", "my", home=home, env=env))
    assert "connection 'closed': cannot connect" in bad(
        cli("connections", "test", "closed", home=home, env=env), code=1
    )


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/gone", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_connections_test_http_sqlite_and_others(
    http_server: str, home: Path, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "data.db"
    with sqlite3.connect(sqlite_file) as db:
        db.execute("CREATE TABLE t (x)")
    env = {
        **ENV,
        "AIRLOOP_CONN_WEB": f"http://{http_server}",
        "AIRLOOP_CONN_WEB_GONE": json.dumps(
            {"conn_type": "http", "host": f"http://{http_server}/gone"}
        ),
        "AIRLOOP_CONN_LITE": json.dumps({"conn_type": "sqlite", "host": str(sqlite_file)}),
        "AIRLOOP_CONN_NOFILE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "no.db")}),
        "AIRLOOP_CONN_S3": "aws://",
    }

    async def test(conn_id: str) -> CliResult:
        # In a thread: this loop serves the HTTP server meanwhile.
        return await asyncio.to_thread(cli, "connections", "test", conn_id, home=home, env=env)

    assert "works: http://127.0.0.1" in ok(await test("web"))
    assert "answered HTTP 404" in bad(await test("web_gone"), code=1)
    assert "works: opened SQLite database" in ok(await test("lite"))
    assert "no SQLite database file" in bad(await test("nofile"), code=1)
    assert not (tmp_path / "no.db").exists()
    assert "connection type 'aws' has no test" in bad(await test("s3"), code=1)


def test_sensitive_extras_are_masked_like_the_password(home: Path) -> None:
    """An extra whose key looks secret (api_key) is never printed in clear unless
    --show-password: not by add, get (table, json, uri) or list."""
    secret = "k3y-v4lue-9z"
    added = ok(
        cli("connections", "add", "api", "--conn-uri", f"http://api.local?api_key={secret}&timeout=5", home=home)
    )  # fmt: skip
    assert secret not in added
    for args in (("get", "api"), ("get", "api", "-o", "uri"), ("list", "-o", "json")):
        assert secret not in ok(cli("connections", *args, home=home)), args
    shown = json.loads(ok(cli("connections", "get", "api", "-o", "json", home=home)))
    assert shown["extra"] == {"api_key": "***", "timeout": "5"}
    shown = json.loads(
        ok(cli("connections", "get", "api", "-o", "json", "--show-password", home=home))
    )
    assert shown["extra"] == {"api_key": secret, "timeout": "5"}
