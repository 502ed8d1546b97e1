"""Fixtures for the engine integration tests: a real SQLite file and a real Engine."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from airloop.engine.engine import Engine
from airloop.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Database and logs under the test's own temporary directory."""
    return Settings(home=tmp_path)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with Engine(settings) as running:
        yield running


@pytest.fixture
def thread_gate() -> Iterator[threading.Event]:
    """An event sync tasks block on; set at teardown so no worker thread outlives the test."""
    gate = threading.Event()
    yield gate
    gate.set()
