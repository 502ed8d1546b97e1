"""Encryption at rest: Fernet tokens for passwords, extras and variable values.

The key comes from the ``fernet_key`` setting (``AIRLOOP_FERNET_KEY``); several keys,
comma-separated, make a ``MultiFernet`` as in Airflow: the first encrypts, any of them
decrypts, and ``rotate`` re-encrypts a token with the first. No key is needed until a
secret must be written or read; then its absence is a one-line error. Messages never
contain the secret or the key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from airloop.exceptions import AirloopError


class FernetKeyError(AirloopError):
    """The fernet key is missing, malformed, or cannot decrypt a stored secret."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


class Crypto:
    """The configured key(s); ``what`` in each call names the secret for messages."""

    def __init__(self, keys: str) -> None:
        self._keys = [k.strip() for k in keys.split(",") if k.strip()]
        self._fernet: MultiFernet | None = None
        for number, key in enumerate(self._keys, start=1):
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                raise FernetKeyError(
                    f"fernet_key (AIRLOOP_FERNET_KEY): key {number} is not a Fernet key "
                    "(32 url-safe base64 bytes; generate one with "
                    "'airloop connections generate-fernet-key')"
                ) from None

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def _get(self, what: str) -> MultiFernet:
        if not self._keys:
            raise FernetKeyError(
                f"no fernet key to encrypt/decrypt {what}: set fernet_key "
                "(AIRLOOP_FERNET_KEY; 'airloop connections generate-fernet-key' makes one)"
            )
        if self._fernet is None:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in self._keys])
        return self._fernet

    def encrypt(self, value: str, what: str) -> str:
        return self._get(what).encrypt(value.encode()).decode()

    def decrypt(self, token: str, what: str) -> str:
        try:
            return self._get(what).decrypt(token.encode()).decode()
        except InvalidToken:
            raise FernetKeyError(f"the fernet key cannot decrypt {what}: wrong key?") from None

    def rotate(self, token: str, what: str) -> str:
        """The token re-encrypted with the first key (decrypted with any)."""
        try:
            return self._get(what).rotate(token.encode()).decode()
        except InvalidToken:
            raise FernetKeyError(f"the fernet key cannot decrypt {what}: wrong key?") from None
