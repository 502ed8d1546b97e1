"""Users and API tokens (tables ``airloop_user`` and ``api_token``): records in, records out.

The store keeps password hashes, never passwords (hashing is the API's job: argon2,
off the loop). A token is shown once when created and stored only as its sha256 hex
digest, so the database alone never lets anyone in (ADR 0038).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from airloop.exceptions import AirloopError
from airloop.store.errors import begin, connect
from airloop.store.schema import ID_LEN, airloop_user, api_token

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")

#: How stale ``last_used_at`` may get before a token's use writes it again.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


class UserError(AirloopError):
    """A user or token that is unknown, taken or malformed."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login: datetime | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token without its secret (only the hash is stored)."""

    id: int
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def utcnow() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    """What the database keeps of a token: its sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    if not username or len(username) > ID_LEN or not _USERNAME.match(username):
        raise UserError(
            f"username {username!r} is not valid: 1 to {ID_LEN} characters, letters, "
            "digits and . _ @ - (not starting with punctuation)"
        )
    return username


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of: {', '.join(ROLES)}")
    return role


_USER_COLUMNS = tuple(UserRecord.__dataclass_fields__)


def _user(row: Any) -> UserRecord:
    values = dict(row._mapping)
    values["is_active"] = bool(values["is_active"])
    return UserRecord(**values)


def _token_query() -> Any:
    t, u = api_token.c, airloop_user.c
    return select(t.id, u.username, t.name, t.created_at, t.expires_at, t.last_used_at).select_from(
        api_token.join(airloop_user, t.user_id == u.id)
    )


def _token(row: Any) -> TokenRecord:
    return TokenRecord(**dict(row._mapping))


class UserStore:
    """The ``airloop_user`` and ``api_token`` tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- users ----------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str, role: str) -> UserRecord:
        """A new active user; UserError when the name is taken or malformed."""
        check_username(username)
        values = {
            "username": username,
            "password_hash": password_hash,
            "role": check_role(role),
            "is_active": True,
            "created_at": utcnow(),
            "last_login": None,
        }
        async with begin(self.engine, UserError, f"user {username!r} already exists") as conn:
            result = await conn.execute(insert(airloop_user).values(values))
        pk = result.inserted_primary_key
        assert pk is not None
        return UserRecord(id=int(pk[0]), **values)  # type: ignore[arg-type]

    async def get_user(self, username: str) -> UserRecord | None:
        c = airloop_user.c
        query = select(*(c[n] for n in _USER_COLUMNS)).where(c.username == username)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _user(row)

    async def users(self) -> list[UserRecord]:
        c = airloop_user.c
        query = select(*(c[n] for n in _USER_COLUMNS)).order_by(c.username)
        async with connect(self.engine) as conn:
            return [_user(r) for r in await conn.execute(query)]

    async def delete_user(self, username: str) -> bool:
        """Delete the user and its tokens; False when there was no such user."""
        c = airloop_user.c
        async with begin(self.engine) as conn:
            pk = (await conn.execute(select(c.id).where(c.username == username))).scalar()
            if pk is None:
                return False
            # Explicitly: SQLite enforces ON DELETE CASCADE only with foreign keys on.
            await conn.execute(delete(api_token).where(api_token.c.user_id == pk))
            await conn.execute(delete(airloop_user).where(c.id == pk))
        return True

    async def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the hash (signed-in sessions of the user end: ADR 0038)."""
        return await self._update_user(username, password_hash=password_hash)

    async def set_role(self, username: str, role: str) -> bool:
        return await self._update_user(username, role=check_role(role))

    async def set_active(self, username: str, active: bool) -> bool:
        return await self._update_user(username, is_active=active)

    async def record_login(self, username: str) -> None:
        await self._update_user(username, last_login=utcnow())

    async def _update_user(self, username: str, **values: Any) -> bool:
        c = airloop_user.c
        async with begin(self.engine) as conn:
            result = await conn.execute(
                update(airloop_user).where(c.username == username).values(values)
            )
        return bool(result.rowcount)

    # -- tokens ---------------------------------------------------------------------

    async def create_token(
        self, username: str, name: str, *, expires_at: datetime | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token for the user: (the secret, shown once; its record)."""
        if not name or len(name) > ID_LEN:
            raise UserError(f"token name {name!r} is not valid: 1 to {ID_LEN} characters")
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        c = airloop_user.c
        async with begin(self.engine) as conn:
            user_pk = (await conn.execute(select(c.id).where(c.username == username))).scalar()
            if user_pk is None:
                raise UserError(f"no user {username!r}")
            taken = await conn.execute(
                select(api_token.c.id).where(
                    api_token.c.user_id == user_pk, api_token.c.name == name
                )
            )
            if taken.first() is not None:
                raise UserError(f"user {username!r} already has a token named {name!r}")
            result = await conn.execute(
                insert(api_token).values(
                    user_id=user_pk,
                    name=name,
                    token_hash=token_hash(secret),
                    created_at=now,
                    expires_at=expires_at,
                    last_used_at=None,
                )
            )
        pk = result.inserted_primary_key
        assert pk is not None
        return secret, TokenRecord(int(pk[0]), username, name, now, expires_at, None)

    async def tokens(self, username: str | None = None) -> list[TokenRecord]:
        query = _token_query().order_by(airloop_user.c.username, api_token.c.name)
        if username is not None:
            query = query.where(airloop_user.c.username == username)
        async with connect(self.engine) as conn:
            return [_token(r) for r in await conn.execute(query)]

    async def revoke_token(self, username: str, name: str) -> bool:
        """Delete the user's token named ``name``; False when there is none."""
        c = airloop_user.c
        async with begin(self.engine) as conn:
            user_pk = (await conn.execute(select(c.id).where(c.username == username))).scalar()
            if user_pk is None:
                return False
            result = await conn.execute(
                delete(api_token).where(api_token.c.user_id == user_pk, api_token.c.name == name)
            )
        return bool(result.rowcount)

    async def user_for_token(self, secret: str) -> tuple[UserRecord, TokenRecord] | None:
        """The active user a valid, unexpired token belongs to, else None. Marks the token
        used (``last_used_at``, written at most once a minute)."""
        t, u = api_token.c, airloop_user.c
        query = (
            select(
                *(u[n] for n in _USER_COLUMNS),
                t.id.label("token_id"),
                t.name.label("token_name"),
                t.created_at.label("token_created_at"),
                t.expires_at,
                t.last_used_at,
            )
            .select_from(api_token.join(airloop_user, t.user_id == u.id))
            .where(t.token_hash == token_hash(secret))
        )
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        values = dict(row._mapping)
        token = TokenRecord(
            values.pop("token_id"),
            values["username"],
            values.pop("token_name"),
            values.pop("token_created_at"),
            values.pop("expires_at"),
            values.pop("last_used_at"),
        )
        user = UserRecord(**{**values, "is_active": bool(values["is_active"])})
        now = utcnow()
        if token.expired(now) or not user.is_active:
            return None
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            async with begin(self.engine) as conn:
                await conn.execute(
                    update(api_token).where(t.id == token.id).values(last_used_at=now)
                )
        return user, token
