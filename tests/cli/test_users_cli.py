"""``airloop users ...`` and ``airloop api-server`` end to end: the installed script,
its own AIRLOOP_HOME (SQLite), a real server process on a free port."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx

from .support import Call, _prepare, airloop, query, spawn, wait_until


def _with_stdin(home: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv, env, cwd = _prepare(Call(args, home))
    return subprocess.run(
        argv, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_users_are_created_listed_and_deleted(home: Path) -> None:
    made = _with_stdin(
        home,
        "a-long-password\n",
        "users",
        "create",
        "--username",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin 'alice'"
    [row] = query(home / "airloop.db", "SELECT username, role, password_hash FROM airloop_user")
    assert (row["username"], row["role"]) == ("alice", "admin")
    assert row["password_hash"].startswith("$argon2id$")
    assert "a-long-password" not in row["password_hash"]

    again = _with_stdin(
        home,
        "a-long-password\n",
        "users",
        "create",
        "-u",
        "alice",
        "-r",
        "viewer",
        "--password-stdin",
    )
    assert again.returncode == 2
    assert again.stderr.strip() == "error: user 'alice' already exists"
    short = _with_stdin(
        home, "short\n", "users", "create", "-u", "bob", "-r", "viewer", "--password-stdin"
    )
    assert short.returncode == 2
    assert "the password must have at least 8 characters" in short.stderr
    role = airloop("users", "create", "-u", "bob", "-r", "root", "--password-stdin", home=home)
    assert role.code == 2
    assert "role 'root' is not one of: viewer, admin" in role.stderr
    no_tty = airloop("users", "create", "-u", "bob", "-r", "viewer", home=home)
    assert no_tty.code == 2
    assert "use --password-stdin" in no_tty.stderr

    changed = _with_stdin(
        home, "another-password\n", "users", "set-password", "-u", "alice", "--password-stdin"
    )
    assert (changed.returncode, changed.stdout.strip()) == (0, "password of 'alice' changed")
    [after] = query(home / "airloop.db", "SELECT password_hash FROM airloop_user")
    assert after["password_hash"].startswith("$argon2id$")
    assert after["password_hash"] != row["password_hash"]

    listed = airloop("users", "list", home=home)
    assert listed.code == 0
    assert "alice" in listed.stdout
    assert "admin" in listed.stdout
    assert "bob" not in listed.stdout
    deleted = airloop("users", "delete", "-u", "alice", home=home)
    assert (deleted.code, deleted.stdout.strip()) == (0, "deleted user 'alice'")
    missing = airloop("users", "delete", "-u", "alice", home=home)
    assert (missing.code, missing.stderr.strip()) == (2, "error: no user 'alice'")


def test_a_token_is_printed_once_works_and_is_revoked(home: Path) -> None:
    made = _with_stdin(
        home, "bob-password\n", "users", "create", "-u", "bob", "-r", "viewer", "--password-stdin"
    )
    assert made.returncode == 0, made.stderr
    created = airloop(
        "users", "token", "create", "-u", "bob", "-n", "ci", "--expires-days", "30", home=home
    )
    assert created.code == 0, created.transcript
    token = created.stdout.strip()
    assert len(token) == 43  # secrets.token_urlsafe(32)
    [row] = query(home / "airloop.db", "SELECT token_hash, expires_at FROM api_token")
    assert token not in row["token_hash"]
    assert row["expires_at"] is not None
    listed = airloop("users", "token", "list", home=home)
    assert "ci" in listed.stdout
    assert token not in listed.stdout
    dup = airloop("users", "token", "create", "-u", "bob", "-n", "ci", home=home)
    assert (dup.code, dup.stderr.strip()) == (
        2,
        "error: user 'bob' already has a token named 'ci'",
    )

    revoked = airloop("users", "token", "revoke", "-u", "bob", "-n", "ci", home=home)
    assert (revoked.code, revoked.stdout.strip()) == (0, "revoked token 'ci' of 'bob'")
    assert query(home / "airloop.db", "SELECT * FROM api_token") == []
    again = airloop("users", "token", "revoke", "-u", "bob", "-n", "ci", home=home)
    assert again.code == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_server_serves_until_sigterm(home: Path) -> None:
    made = _with_stdin(
        home, "bob-password\n", "users", "create", "-u", "bob", "-r", "viewer", "--password-stdin"
    )
    assert made.returncode == 0, made.stderr
    token = airloop("users", "token", "create", "-u", "bob", "-n", "ci", home=home).stdout.strip()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    call = Call(("api-server", "--port", str(port)), home, {"AIRLOOP_API__AUTH": "password"})
    with spawn(call) as proc:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/login", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(up, timeout=60, interval=0.2), proc.stderr and proc.stderr.read()
        anonymous = httpx.get(f"{base}/api/v1/auth/me")
        assert anonymous.status_code == 401
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"username": "bob", "role": "viewer"}
        assert me.headers["x-frame-options"] == "DENY"
        health = httpx.get(f"{base}/api/v1/health")
        assert health.status_code != 401  # open without signing in
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert "Application shutdown complete" in proc.stderr.read()


def test_api_server_refuses_a_public_address_without_passwords(home: Path) -> None:
    result = airloop("api-server", "--host", "0.0.0.0", home=home)
    assert result.code == 2
    assert result.err_lines == [
        "error: api-server: refusing to listen on 0.0.0.0: with [api] auth = 'none' every "
        "request is the admin, so only a loopback address (127.0.0.1, ::1, localhost) is "
        "allowed; set [api] auth = 'password' (AIRLOOP_API__AUTH=password) to listen on "
        "other addresses"
    ]
