"""Secret masking: registered secrets (and values under sensitive keys) become ``***``.

As Airflow's secrets masker: ``mask_secret`` registers a value (a password, an extra
marked sensitive, a variable whose key looks secret); every place where text leaves
the process -- task logs, stored rendered fields, stored task errors, the CLI's error
output -- passes it through ``redact_text`` (a string) or ``redact`` (a structure).

One masker per process, shared by every thread: registration takes a lock and
rebuilds ONE compiled regex over all secrets; reading never locks (the pattern is
swapped in whole). With nothing registered ``redact_text`` is one attribute check.
Secrets shorter than ``MIN_SECRET_LENGTH`` are ignored, as Airflow ignores them: masking
"abc" would mask every "abc" in every log.

Pure: no I/O, no event loop. The process and Dask executors ship ``secrets()`` with each
call and register what comes back (see docs/adr/0032-secret-masking.md).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

#: What a secret is replaced with.
MASK = "***"

#: Secrets shorter than this are not masked (they would hide ordinary words).
MIN_SECRET_LENGTH = 5

#: Airflow's default sensitive names: a key containing one of them (case-insensitive)
#: has its value hidden; the ``sensitive_var_conn_names`` setting adds more.
DEFAULT_SENSITIVE_NAMES: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "authorization",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "secret",
        "token",
        "keyfile_dict",
        "service_account",
    }
)

#: How deep ``redact`` and ``mask_secret`` walk nested structures (cycles stop here).
MAX_DEPTH = 10


def _variants(secret: str) -> set[str]:
    """The secret as written, and as it appears escaped in a repr or JSON (a traceback
    prints ``'line1\\nline2'``; a stored JSON value escapes quotes and backslashes)."""
    found = {secret}
    found.add(repr(secret)[1:-1])
    found.add(json.dumps(secret)[1:-1])
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH}


def parse_sensitive_names(text: str) -> frozenset[str]:
    """``sensitive_var_conn_names`` as Airflow writes it: comma-separated names."""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


class SecretsMasker:
    """The registered secrets of one process and the names whose values are hidden."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._originals: tuple[str, ...] = ()
        #: None while nothing is registered: the fast path of redact_text.
        self._pattern: re.Pattern[str] | None = None
        self._names: frozenset[str] = DEFAULT_SENSITIVE_NAMES

    # -- names ----------------------------------------------------------------------

    def set_sensitive_names(self, extra: Iterable[str]) -> None:
        """Airflow's defaults plus ``extra`` (the ``sensitive_var_conn_names`` setting)."""
        names = DEFAULT_SENSITIVE_NAMES | {n.strip().lower() for n in extra if n.strip()}
        self._names = frozenset(names)

    def should_hide_value_for_key(self, key: object) -> bool:
        """Does ``key`` (a connection extra, a variable's key, a dict key) look secret?"""
        if not isinstance(key, str) or not key:
            return False
        lowered = key.strip().lower()
        return any(name in lowered for name in self._names)

    # -- registration ---------------------------------------------------------------

    def mask_secret(self, secret: Any, name: str | None = None) -> None:
        """Register ``secret``: a string or number (unless ``name`` is given and does
        not look sensitive, as in Airflow), a mapping (values whose key looks sensitive,
        recursively; all of them when ``name`` looks sensitive) or an iterable of them.
        Anything else (bytes, a bool, an object) is a TypeError naming its type."""
        found: list[str] = []
        self._collect(secret, name, found, 0)
        self.add(found)

    def _collect(self, value: Any, name: str | None, found: list[str], depth: int) -> None:
        if depth > MAX_DEPTH or value is None:
            return
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if name is None or self.should_hide_value_for_key(name):
                found.append(str(value))  # a number (a PIN) is masked as written
            return
        if isinstance(value, Mapping):
            hide_all = name is not None and self.should_hide_value_for_key(name)
            for key, sub in value.items():
                if hide_all or self.should_hide_value_for_key(key):
                    self._collect_all(sub, found, depth + 1)
                elif isinstance(sub, (Mapping, list, tuple, set, frozenset)):
                    self._collect(sub, str(key), found, depth + 1)
            return
        if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
            for sub in value:
                self._collect(sub, name, found, depth + 1)
            return
        raise TypeError(
            f"mask_secret: cannot mask a {type(value).__name__} "
            "(give a str, a number, a mapping or an iterable of them)"
        )

    def _collect_all(self, value: Any, found: list[str], depth: int) -> None:
        """Every leaf of a value under a sensitive key is a secret."""
        if depth > MAX_DEPTH or value is None or isinstance(value, bool):
            return
        if isinstance(value, Mapping):
            for sub in value.values():
                self._collect_all(sub, found, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for sub in value:
                self._collect_all(sub, found, depth + 1)
        elif isinstance(value, (str, int, float)):
            found.append(str(value))

    def add(self, secrets: Iterable[str]) -> None:
        """Register plain strings (what ``secrets()`` of another process returned)."""
        fresh = [s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH]
        if not fresh:
            return
        with self._lock:
            # Every original is among the variants (it is long enough): a set lookup.
            new = [s for s in dict.fromkeys(fresh) if s not in self._secrets]
            if not new:
                return
            originals = self._originals + tuple(new)
            variants = set(self._secrets)
            for secret in new:
                variants |= _variants(secret)
            # Longest first: a secret containing another is masked whole.
            ordered = sorted(variants, key=lambda s: (-len(s), s))
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            self._secrets = frozenset(variants)
            self._originals = originals

    @property
    def active(self) -> bool:
        """Is anything registered? (Writers skip even a join when not.)"""
        return self._pattern is not None

    def secrets(self) -> tuple[str, ...]:
        """The secrets registered so far, in registration order (shipped to workers)."""
        return self._originals

    def reset(self) -> None:
        """Forget every secret and extra name (tests)."""
        with self._lock:
            self._secrets = frozenset()
            self._originals = ()
            self._pattern = None
            self._names = DEFAULT_SENSITIVE_NAMES

    # -- redaction ------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``***`` (fast when none)."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact(self, value: Any, name: str | None = None) -> Any:
        """A copy of ``value`` (str, dict, list, tuple, set, nested) with secrets masked;
        a value under a sensitive key (or ``name``) is replaced whole."""
        if name is not None and self.should_hide_value_for_key(name):
            return self._hide_all(value, 0)
        if self._pattern is None and not isinstance(value, (Mapping, list, tuple, set, frozenset)):
            return value
        return self._redact(value, 0)

    def _redact(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if depth > MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {
                key: (
                    self._hide_all(sub, depth + 1)
                    if self.should_hide_value_for_key(key)
                    else self._redact(sub, depth + 1)
                )
                for key, sub in value.items()
            }
        if isinstance(value, tuple):
            return tuple(self._redact(sub, depth + 1) for sub in value)
        if isinstance(value, list):
            return [self._redact(sub, depth + 1) for sub in value]
        if isinstance(value, (set, frozenset)):
            return type(value)(self._redact(sub, depth + 1) for sub in value)
        return value

    def _hide_all(self, value: Any, depth: int) -> Any:
        """A value under a sensitive key: containers keep their shape, every leaf is
        ``***`` (None and empty strings stay: there is nothing to hide)."""
        if value is None or value == "":
            return value
        if depth > MAX_DEPTH:
            return MASK
        if isinstance(value, Mapping):
            return {key: self._hide_all(sub, depth + 1) for key, sub in value.items()}
        if isinstance(value, tuple):
            return tuple(self._hide_all(sub, depth + 1) for sub in value)
        if isinstance(value, list):
            return [self._hide_all(sub, depth + 1) for sub in value]
        if isinstance(value, (set, frozenset)):
            return [self._hide_all(sub, depth + 1) for sub in value]
        return MASK


#: The process's masker.
MASKER = SecretsMasker()


def mask_secret(
    secret: str | int | float | Mapping[str, Any] | Iterable[Any], name: str | None = None
) -> None:
    """Register a secret to mask everywhere this process writes text (Airflow's
    ``mask_secret``): a string or number; a mapping's values whose key looks sensitive
    (recursively; all of them when ``name`` does); an iterable of either."""
    MASKER.mask_secret(secret, name)


def redact(value: Any, name: str | None = None) -> Any:
    """A copy of ``value`` with registered secrets (and sensitive keys' values) masked."""
    return MASKER.redact(value, name)


def redact_text(text: str) -> str:
    """``text`` with registered secrets replaced by ``***`` (the fast path for logs)."""
    return MASKER.redact_text(text)


def should_hide_value_for_key(key: object) -> bool:
    """Does ``key`` contain one of the sensitive names (Airflow's, plus the setting's)?"""
    return MASKER.should_hide_value_for_key(key)


def set_sensitive_names(extra: Iterable[str]) -> None:
    """Apply the ``sensitive_var_conn_names`` setting (names added to Airflow's)."""
    MASKER.set_sensitive_names(extra)


def secrets() -> tuple[str, ...]:
    """What this process has registered (shipped to worker processes with their work)."""
    return MASKER.secrets()


def add_secrets(values: Iterable[str]) -> None:
    """Register secrets another process registered (its ``secrets()``)."""
    MASKER.add(values)
