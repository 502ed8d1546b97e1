"""Fixtures of the SQL tests: a database per backend, an engine on a throwaway store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from airloop.engine.engine import Engine
from airloop.settings import Settings

from .dbs import BACKENDS, SERVERS, Db, open_db


@pytest_asyncio.fixture(params=BACKENDS)
async def db(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Db]:
    """Each backend in turn, as the connection ``db``."""
    async for opened in open_db(request.param, monkeypatch, tmp_path):
        yield opened


@pytest_asyncio.fixture(params=SERVERS)
async def server_db(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Db]:
    """PostgreSQL and MariaDB in turn, as the connection ``db``."""
    async for opened in open_db(request.param, monkeypatch, tmp_path):
        yield opened


@pytest_asyncio.fixture
async def pg_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Db]:
    """PostgreSQL only, as the connection ``db``."""
    async for opened in open_db("postgres", monkeypatch, tmp_path):
        yield opened


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest_asyncio.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running
