"""``airloop users ...``: the API server's users (``api.auth = "password"``) and their
API tokens. Passwords are read from a prompt or stdin, never from arguments (they would
land in the shell history); a token is printed once, when created."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from airloop.api.auth.passwords import check_password, hash_password
from airloop.cli.common import ConfigOption, bad_input, fail, out, settings_from
from airloop.settings import Settings

if TYPE_CHECKING:
    from airloop.store.users import TokenRecord, UserStore

T = TypeVar("T")

app = typer.Typer(help="Manage the API server's users and API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens (for scripts).", no_args_is_help=True)
app.add_typer(token_app, name="token")

UsernameOption = Annotated[str, typer.Option("--username", "-u", help="The user's name.")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from stdin (first line) instead of a prompt."
    ),
]


def _run(settings: Settings, action: Callable[[UserStore], Awaitable[T]]) -> T:
    from airloop.store.database import open_engine
    from airloop.store.users import UserStore

    async def go() -> T:
        engine = await open_engine(settings.database_url, auto_migrate=True, pooled=False)
        try:
            return await action(UserStore(engine))
        finally:
            await engine.dispose()

    with bad_input():
        return asyncio.run(go())
    raise AssertionError("unreachable")  # pragma: no cover


def _read_password(from_stdin: bool, what: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            fail(f"{what}: no terminal to prompt for the password; use --password-stdin")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = check_password(password)
    if problem:
        fail(f"{what}: {problem}")
    return password


@app.command("create")
def create(
    username: UsernameOption,
    role: Annotated[str, typer.Option("--role", "-r", help="viewer or admin.")],
    password_stdin: PasswordStdinOption = False,
    config: ConfigOption = None,
) -> None:
    """Create a user (viewer: reads; admin: also triggers, clears, marks, edits)."""
    from airloop.store.users import check_role, check_username

    with bad_input("users create"):
        check_username(username)
        check_role(role)
    settings = settings_from(config)
    password = _read_password(password_stdin, f"users create {username}")

    async def go(users: UserStore) -> None:
        await users.create_user(username, await hash_password(password), role)

    _run(settings, go)
    out.print(f"created {role} {username!r}", markup=False)


@app.command("set-password")
def set_password(
    username: UsernameOption,
    password_stdin: PasswordStdinOption = False,
    config: ConfigOption = None,
) -> None:
    """Change a user's password (their browser sessions end)."""
    settings = settings_from(config)
    password = _read_password(password_stdin, f"users set-password {username}")

    async def go(users: UserStore) -> bool:
        return await users.set_password(username, await hash_password(password))

    if not _run(settings, go):
        fail(f"no user {username!r}")
    out.print(f"password of {username!r} changed", markup=False)


@app.command("list")
def list_command(config: ConfigOption = None) -> None:
    """The users: name, role, whether active, created, last login."""
    settings = settings_from(config)
    rows = _run(settings, lambda users: users.users())
    table = Table("username", "role", "active", "created", "last login")
    for user in rows:
        table.add_row(
            user.username,
            user.role,
            "yes" if user.is_active else "no",
            user.created_at.isoformat(timespec="seconds"),
            user.last_login.isoformat(timespec="seconds") if user.last_login else "",
        )
    out.print(table)


@app.command("delete")
def delete(username: UsernameOption, config: ConfigOption = None) -> None:
    """Delete a user and their API tokens."""
    settings = settings_from(config)
    if not _run(settings, lambda users: users.delete_user(username)):
        fail(f"no user {username!r}")
    out.print(f"deleted user {username!r}", markup=False)


@token_app.command("create")
def token_create(
    username: UsernameOption,
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")],
    expires_days: Annotated[
        float | None,
        typer.Option("--expires-days", min=0.001, help="Days until it expires (default: never)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API token and print it (once: only its hash is kept). Scripts send it
    as 'Authorization: Bearer <token>'."""
    from airloop.store.users import utcnow

    settings = settings_from(config)
    expires_at = None if expires_days is None else utcnow() + timedelta(days=expires_days)
    secret, _ = _run(
        settings, lambda users: users.create_token(username, name, expires_at=expires_at)
    )
    if sys.stdout.isatty():
        expiry = expires_at.isoformat(timespec="seconds") if expires_at else "never"
        print(f"token {name!r} of {username!r} (expires: {expiry}); it is shown only now:")
    print(secret)


@token_app.command("list")
def token_list(
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Only this user's tokens.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """API tokens (never their secrets): user, name, created, expires, last used."""
    from airloop.store.users import utcnow

    settings = settings_from(config)
    rows: list[TokenRecord] = _run(settings, lambda users: users.tokens(username))
    now = utcnow()
    table = Table("username", "name", "created", "expires", "last used")
    for token in rows:
        expires = token.expires_at.isoformat(timespec="seconds") if token.expires_at else "never"
        table.add_row(
            token.username,
            token.name,
            token.created_at.isoformat(timespec="seconds"),
            expires + (" (expired)" if token.expired(now) else ""),
            token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    username: UsernameOption,
    name: Annotated[str, typer.Option("--name", "-n", help="The token's name.")],
    config: ConfigOption = None,
) -> None:
    """Revoke (delete) an API token: requests sending it get 401 from now on."""
    settings = settings_from(config)
    if not _run(settings, lambda users: users.revoke_token(username, name)):
        fail(f"user {username!r} has no token named {name!r}")
    out.print(f"revoked token {name!r} of {username!r}", markup=False)
