"""Password hashing with argon2 (argon2-cffi), always in a thread: a hash takes tens
of milliseconds of CPU, which the event loop must not spend."""

from __future__ import annotations

import functools
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from airloop.runtime import in_thread

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong name costs the same
    time as a wrong password (no user enumeration by timing). Made on first use."""
    return _HASHER.hash("airloop: no such user")


MIN_PASSWORD_LENGTH = 8

#: Hashes computed at once, whatever the number of login attempts: a flood of logins
#: queues here (in its threads) instead of taking every core from the scheduler.
_SLOTS = threading.BoundedSemaphore(2)


def check_password(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    return None


def hash_password_blocking(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    with _SLOTS:
        try:
            matched = _HASHER.verify(password_hash or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
    return matched and password_hash is not None


async def hash_password(password: str) -> str:
    return await in_thread(hash_password_blocking, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no such user) is checked against a dummy
    hash and is always False."""
    return await in_thread(_verify, password_hash, password)
