"""``airloop connections ...`` and ``airloop variables ...``: the installed script,
real databases (SQLite, PostgreSQL, MariaDB), a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from airloop.connections.crypto import generate_key

from .support import CliResult, airloop, query

pytestmark = pytest.mark.slow

KEY = generate_key()


def ok(result: CliResult) -> str:
    assert result.code == 0, result.transcript
    return result.stdout


def bad(result: CliResult, code: int = 2) -> str:
    """The one-line error of a refused command (no traceback)."""
    assert result.code == code, result.transcript
    assert len(result.err_lines) == 1, result.transcript
    assert "Traceback" not in result.stderr
    return result.err_lines[0]


def test_add_get_list_delete(home: Path) -> None:
    env = {"AIRLOOP_FERNET_KEY": KEY}
    out = ok(
        airloop(
            "connections", "add", "pg",
            "--conn-uri", "postgres://etl:s3cret@db.local:5432/wh?sslmode=require",
            "--conn-description", "the warehouse",
            home=home, env=env,
        )
    )  # fmt: skip
    assert "s3cret" not in out
    assert "postgres://etl@db.local:5432/wh" in out
    ok(
        airloop(
            "connections", "add", "api", "--conn-type", "http", "--conn-host", "api.local",
            "--conn-port", "8080", "--conn-extra", '{"timeout": 5}',
            home=home, env=env,
        )
    )  # fmt: skip
    ok(
        airloop(
            "connections", "add", "js", "--conn-json", '{"conn_type": "s3"}', home=home, env=env
        )
    )
    table = ok(airloop("connections", "get", "pg", home=home, env=env))
    assert "s3cret" not in table
    assert "***" in table
    assert "metadata database" in table
    shown = json.loads(
        ok(airloop("connections", "get", "pg", "-o", "json", "--show-password", home=home, env=env))
    )
    assert shown["password"] == "s3cret"
    assert shown["extra"] == {"sslmode": "require"}
    assert shown["description"] == "the warehouse"
    uri = ok(airloop("connections", "get", "pg", "-o", "uri", home=home, env=env)).strip()
    assert uri == "postgres://etl:***@db.local:5432/wh?sslmode=require"
    listed = ok(airloop("connections", "list", "-o", "json", home=home, env=env))
    assert [c["conn_id"] for c in json.loads(listed)] == ["api", "js", "pg"]
    assert "s3cret" not in listed
    # Encrypted at rest: the file holds no secret.
    rows = query(home / "airloop.db", "SELECT * FROM connection WHERE conn_id = 'pg'")
    assert rows[0]["is_encrypted"] == 1
    assert "s3cret" not in rows[0]["password"]
    # The environment is looked up first.
    env_first = ok(
        airloop(
            "connections", "get", "pg", "-o", "json",
            home=home, env={**env, "AIRLOOP_CONN_PG": "http://from-env"},
        )
    )  # fmt: skip
    assert json.loads(env_first)["source"] == "environment"
    assert "already exists" in bad(
        airloop("connections", "add", "pg", "--conn-uri", "http://x", home=home, env=env)
    )
    ok(airloop("connections", "delete", "pg", home=home, env=env))
    assert "'pg' is not in the metadata database" in bad(
        airloop("connections", "delete", "pg", home=home, env=env)
    )
    assert "connection 'pg' not found (looked in: environment variable AIRLOOP_CONN_PG" in bad(
        airloop("connections", "get", "pg", home=home, env=env)
    )


def test_bad_input_is_one_line_and_exit_2(home: Path, tmp_path: Path) -> None:
    env = {"AIRLOOP_FERNET_KEY": KEY}
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
    }
    for args, expected in cases.items():
        assert expected in bad(airloop(*args, home=home, env=env)), args
    assert "no fernet key to encrypt/decrypt connection 'x'" in bad(
        airloop("connections", "add", "x", "--conn-uri", "http://u:pw@h", home=home)
    )
    assert "fernet_key (AIRLOOP_FERNET_KEY): key 1 is not a Fernet key" in bad(
        airloop("variables", "list", home=home, env={"AIRLOOP_FERNET_KEY": "short"})
    )


def test_variables_and_rotation(home: Path, tmp_path: Path) -> None:
    old, new = KEY, generate_key()
    env = {"AIRLOOP_FERNET_KEY": old}
    ok(
        airloop(
            "variables", "set", "region", "eu-west-3", "--description", "where", home=home, env=env
        )
    )
    ok(airloop("variables", "set", "cfg", '{"n": 2}', "-j", home=home, env=env))
    ok(airloop("connections", "add", "c", "--conn-uri", "http://u:pw@h", home=home, env=env))
    assert ok(airloop("variables", "get", "region", home=home, env=env)).strip() == "eu-west-3"
    assert json.loads(ok(airloop("variables", "get", "cfg", "-j", home=home, env=env))) == {"n": 2}
    assert ok(airloop("variables", "get", "nope", "--default", "d", home=home, env=env)) == "d\n"
    assert "variable 'nope' not found" in bad(
        airloop("variables", "get", "nope", home=home, env=env)
    )
    listed = ok(airloop("variables", "list", home=home, env=env))
    assert "region" in listed
    assert "eu-west-3" not in listed  # keys and descriptions, not values
    rows = query(home / "airloop.db", "SELECT val FROM variable")
    assert all("eu-west-3" not in r["val"] for r in rows)
    # Rotation: NEW,OLD -> rotate -> NEW alone reads everything; OLD alone no more.
    out = ok(
        airloop(
            "connections",
            "rotate-fernet-key",
            home=home,
            env={"AIRLOOP_FERNET_KEY": f"{new},{old}"},
        )
    )
    assert "re-encrypted 1 connection(s) and 2 variable(s)" in out
    only_new = {"AIRLOOP_FERNET_KEY": new}
    assert ok(airloop("variables", "get", "region", home=home, env=only_new)).strip() == "eu-west-3"
    got = json.loads(
        ok(
            airloop(
                "connections", "get", "c", "-o", "json", "--show-password", home=home, env=only_new
            )
        )
    )
    assert got["password"] == "pw"
    assert bad(airloop("variables", "get", "region", home=home, env=env)) == (
        "error: the fernet key cannot decrypt variable 'region': wrong key?"
    )
    ok(airloop("variables", "delete", "region", home=home, env=only_new))
    assert "not in the metadata database" in bad(
        airloop("variables", "delete", "region", home=home, env=only_new)
    )


def test_export_and_import_round_trip(home: Path, tmp_path: Path) -> None:
    env = {"AIRLOOP_FERNET_KEY": KEY}
    conns = tmp_path / "conns.json"
    conns.write_text(
        json.dumps(
            {
                "pg": {"conn_type": "postgres", "host": "db", "password": "pw", "extra": {"a": 1}},
                "web": "https://user:tok@example.org:8443/path",
            }
        )
    )
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"s": "text", "obj": {"k": [1, 2]}, "n": 3}))
    assert "imported 2 connection(s)" in ok(
        airloop("connections", "import", conns, home=home, env=env)
    )
    assert "already exists" in bad(airloop("connections", "import", conns, home=home, env=env))
    ok(airloop("connections", "import", conns, "--overwrite", home=home, env=env))
    assert "imported 3 variable(s)" in ok(
        airloop("variables", "import", variables, home=home, env=env)
    )
    assert "0 variable(s)" in ok(
        airloop("variables", "import", variables, "-a", "skip", home=home, env=env)
    )
    assert "already exists" in bad(
        airloop("variables", "import", variables, "-a", "fail", home=home, env=env)
    )
    out_conns, out_vars = tmp_path / "out_c.json", tmp_path / "out_v.json"
    ok(airloop("connections", "export", out_conns, home=home, env=env))
    ok(airloop("variables", "export", out_vars, home=home, env=env))
    exported = json.loads(out_conns.read_text())
    assert exported["pg"] == {
        "conn_type": "postgres",
        "host": "db",
        "password": "pw",
        "extra": {"a": 1},
    }
    assert exported["web"]["password"] == "tok"
    assert exported["web"]["port"] == 8443
    assert json.loads(out_vars.read_text()) == {"s": "text", "obj": {"k": [1, 2]}, "n": 3}


def test_a_server_database(server_database_url: str, home: Path) -> None:
    env = {"AIRLOOP_FERNET_KEY": KEY, "AIRLOOP_DATABASE_URL": server_database_url}
    ok(airloop("connections", "add", "s", "--conn-uri", "http://u:pw@h:1", home=home, env=env))
    ok(airloop("variables", "set", "v", "value", home=home, env=env))
    got = json.loads(
        ok(airloop("connections", "get", "s", "-o", "json", "--show-password", home=home, env=env))
    )
    assert got["password"] == "pw"
    assert ok(airloop("variables", "get", "v", home=home, env=env)).strip() == "value"
    assert not (home / "airloop.db").exists()


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


async def test_connections_test(http_server: str, home: Path, tmp_path: Path) -> None:
    import sqlite3

    sqlite_file = tmp_path / "data.db"
    with sqlite3.connect(sqlite_file) as db:
        db.execute("CREATE TABLE t (x)")
    env = {
        "AIRLOOP_FERNET_KEY": KEY,
        "AIRLOOP_CONN_WEB": f"http://{http_server}",
        "AIRLOOP_CONN_WEB_GONE": json.dumps(
            {"conn_type": "http", "host": f"http://{http_server}/gone"}
        ),
        "AIRLOOP_CONN_PG": "postgres://root@127.0.0.1:5432/test",
        "AIRLOOP_CONN_MY": "mysql://root@127.0.0.1:3306/test",
        "AIRLOOP_CONN_CLOSED": "postgres://root@127.0.0.1:1/test",
        "AIRLOOP_CONN_LITE": json.dumps({"conn_type": "sqlite", "host": str(sqlite_file)}),
        "AIRLOOP_CONN_NOFILE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "no.db")}),
        "AIRLOOP_CONN_S3": "aws://",
    }

    async def call(conn_id: str) -> CliResult:
        return await asyncio.to_thread(airloop, "connections", "test", conn_id, home=home, env=env)

    assert "works: http://127.0.0.1" in ok(await call("web"))
    assert "answered HTTP 404" in bad(await call("web_gone"), code=1)
    assert "works: connected to postgres" in ok(await call("pg"))
    assert "works: connected to mysql" in ok(await call("my"))
    assert "connection 'closed': cannot connect" in bad(await call("closed"), code=1)
    assert "works: opened SQLite database" in ok(await call("lite"))
    assert "no SQLite database file" in bad(await call("nofile"), code=1)
    assert not (tmp_path / "no.db").exists()
    assert "connection type 'aws' has no test" in bad(await call("s3"), code=1)
