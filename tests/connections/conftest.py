"""Connections and variables against a real metadata database (three backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airloop.connections import lookup
from airloop.connections.crypto import generate_key
from airloop.settings import Settings


@pytest.fixture
def fernet_key() -> str:
    return generate_key()


@pytest.fixture
def use_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``use_settings(settings)``: what lookups outside an engine read (as a script's
    load_settings() would give), for this test only."""

    def use(settings: Settings) -> Settings:
        monkeypatch.setattr(lookup, "_loaded", settings)
        return settings

    yield use
    lookup.set_sources(None)


def settings_for(
    tmp_path: Path, database_url: str, fernet_key: str = "", **more: object
) -> Settings:
    return Settings(home=tmp_path, database_url=database_url, fernet_key=fernet_key, **more)
