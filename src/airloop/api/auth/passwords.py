"""Password hashing with argon2 (argon2-cffi), always in a thread: a hash takes tens
of milliseconds of CPU, which the event loop must not spend."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from airloop.runtime import in_thread

_HASHER = PasswordHasher()

#: Verified against when the username is unknown, so a wrong name costs the same time
#: as a wrong password (no user enumeration by timing).
_DUMMY_HASH = _HASHER.hash("airloop: no such user")

MIN_PASSWORD_LENGTH = 8


def check_password(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    return None


def hash_password_blocking(password: str) -> str:
    return _HASHER.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await in_thread(hash_password_blocking, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no such user) is checked against a dummy
    hash and is always False."""
    return await in_thread(_verify, password_hash, password)
