"""Where connections and variables come from, and the order they are looked up in.

Airflow's order: the environment (``AIRLOOP_CONN_<ID>``, ``AIRLOOP_VAR_<KEY>``), then
a secrets backend when one is configured, then the metadata database. The first
source that holds the id wins. Sources are async: a backend or the database is a
network call, and a lookup must never block the event loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import quote, quote_plus

from airloop.connections.model import Connection, ConnectionNotFound, InvalidConnection
from airloop.core.masking import mask_secret, should_hide_value_for_key

CONN_PREFIX = "AIRLOOP_CONN_"
VAR_PREFIX = "AIRLOOP_VAR_"


@runtime_checkable
class SecretsSource(Protocol):
    """One place connections and variables are kept."""

    name: str

    async def get_connection(self, conn_id: str) -> Connection | None: ...

    async def get_variable(self, key: str) -> str | None: ...


#: ``AIRLOOP_CONN_*`` / ``AIRLOOP_VAR_*`` of the scheduler's process, shipped with each
#: task to process and Dask workers (whose environment was fixed when they started):
#: looked up after the worker's own environment, so a task finds the same
#: connections on every executor.
_shipped: dict[str, str] = {}


def environment_to_ship() -> tuple[tuple[str, str], ...]:
    """This process's connections and variables from the environment, to ship."""
    return tuple((k, v) for k, v in os.environ.items() if k.startswith((CONN_PREFIX, VAR_PREFIX)))


def receive_environment(items: tuple[tuple[str, str], ...]) -> None:
    """In a worker: what the scheduler's process shipped (replaces what came before)."""
    _shipped.clear()
    _shipped.update(items)


class EnvironmentSource:
    """``AIRLOOP_CONN_<ID>`` (URI or JSON form) and ``AIRLOOP_VAR_<KEY>``; ids upper-cased.

    In a process or Dask worker, the scheduler's values (shipped with the task) are
    looked up after the worker's own environment.
    """

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _get(self, name: str) -> str | None:
        found = self._env().get(name)
        if found is None and self._environ is None:
            return _shipped.get(name)
        return found

    async def get_connection(self, conn_id: str) -> Connection | None:
        name = CONN_PREFIX + conn_id.upper()
        text = self._get(name)
        if text is None:
            return None
        try:
            return Connection.parse(conn_id, text)
        except InvalidConnection as exc:
            raise InvalidConnection(f"environment variable {name}: {exc}") from None

    async def get_variable(self, key: str) -> str | None:
        return self._get(VAR_PREFIX + key.upper())

    def connection_ids(self) -> list[str]:
        return sorted(
            k[len(CONN_PREFIX) :].lower() for k in self._env() if k.startswith(CONN_PREFIX)
        )


async def find_connection(conn_id: str, sources: Sequence[SecretsSource]) -> Connection:
    """The connection from the first source that holds it; else a clear error naming them."""
    for source in sources:
        found = await source.get_connection(conn_id)
        if found is not None:
            mask_connection(found)
            return found
    raise ConnectionNotFound(conn_id, [_where(s, conn_id) for s in sources])


async def find_variable(key: str, sources: Sequence[SecretsSource]) -> str | None:
    """The variable's text from the first source that holds it, or None."""
    for source in sources:
        found = await source.get_variable(key)
        if found is not None:
            mask_variable(key, found)
            return found
    return None


def mask_connection(conn: Connection) -> None:
    """Register a connection's secrets with the masker (ADR 0032): its password and
    the extras whose key looks sensitive (also as they appear URL-quoted in ``get_uri()``)."""
    if conn.password:
        mask_secret(conn.password)
        quoted = quote(conn.password, safe="")
        if quoted != conn.password:
            mask_secret(quoted)
    if conn.extra:
        extra = conn.extra_dejson
        mask_secret(extra)
        for key, value in extra.items():  # as get_uri() writes them (urlencode)
            if isinstance(value, str) and should_hide_value_for_key(key):
                encoded = quote_plus(value, safe="")
                if encoded != value:
                    mask_secret(encoded)


def mask_variable(key: str, text: str) -> None:
    """Register a variable's value when its key looks secret (``api_key``, ``token`` ...);
    a JSON value's sensitive keys are registered whatever the variable's key."""
    if should_hide_value_for_key(key):
        mask_secret(text)
    try:
        parsed = json.loads(text)
    except ValueError:
        return
    if isinstance(parsed, dict | list):
        mask_secret(parsed, name=key)


def _where(source: SecretsSource, conn_id: str) -> str:
    if isinstance(source, EnvironmentSource):
        return f"environment variable {CONN_PREFIX}{conn_id.upper()}"
    return source.name
