"""The lookup every hook, template and CLI command uses: the configured sources, in order."""

from __future__ import annotations

from collections.abc import Sequence

from airloop.connections.model import Connection
from airloop.connections.sources import (
    EnvironmentSource,
    SecretsSource,
    find_connection,
    find_variable,
)

_configured: list[SecretsSource] | None = None


def configured_sources() -> list[SecretsSource]:
    """The sources in lookup order (the environment first)."""
    if _configured is None:
        return [EnvironmentSource()]
    return list(_configured)


def set_sources(sources: Sequence[SecretsSource] | None) -> None:
    """Replace the lookup order (None restores the default)."""
    global _configured
    _configured = None if sources is None else list(sources)


async def aget_connection(conn_id: str) -> Connection:
    return await find_connection(conn_id, configured_sources())


async def aget_variable_text(key: str) -> str | None:
    return await find_variable(key, configured_sources())
