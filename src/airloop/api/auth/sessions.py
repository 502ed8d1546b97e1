"""Browser sessions in a signed cookie (itsdangerous): who signed in, their CSRF
token, and a fingerprint of their password hash, so changing the password ends every
session. Expiry is checked on the server from the signature's timestamp (the cookie's
own Max-Age is only a hint to the browser); a session in use is re-signed at most once
a minute, so it lasts ``api.session_hours`` after the last request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "airloop_session"
#: The double-submit CSRF cookie of requests without a session (auth none, login form).
CSRF_COOKIE = "airloop_csrf"
#: A session older than this is re-signed (sliding expiry at minute resolution).
RENEW_AFTER = timedelta(minutes=1)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    csrf_token: str
    fingerprint: str
    issued_at: datetime

    def stale(self, now: datetime) -> bool:
        return now - self.issued_at >= RENEW_AFTER


class SessionCodec:
    """Signs and reads session cookies with the server's key."""

    def __init__(self, secret_key: str | bytes, max_age: timedelta) -> None:
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(secret_key, salt="airloop.session")

    def dumps(self, username: str, csrf_token: str, password_hash: str) -> str:
        data = {"u": username, "c": csrf_token, "p": password_fingerprint(password_hash)}
        return self._serializer.dumps(data)

    def renew(self, session: Session) -> str:
        data = {"u": session.username, "c": session.csrf_token, "p": session.fingerprint}
        return self._serializer.dumps(data)

    def loads(self, value: str) -> Session | None:
        """The session, or None when the cookie is forged, malformed or expired."""
        try:
            data, signed_at = self._serializer.loads(
                value, max_age=int(self.max_age.total_seconds()), return_timestamp=True
            )
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("u", "c", "p")
        ):
            return None
        return Session(data["u"], data["c"], data["p"], signed_at.astimezone(UTC))


def set_cookie_header(
    name: str, value: str, *, secure: bool, max_age: int | None = None
) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header: HttpOnly, SameSite=Strict, Path=/ (Secure over https).
    ``max_age`` 0 deletes the cookie."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        key, sep, value = chunk.strip().partition("=")
        if sep and key and key not in cookies:
            cookies[key] = value.strip()
    return cookies
