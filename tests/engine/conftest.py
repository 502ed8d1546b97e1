"""Fixtures for the engine integration tests: a real SQLite file and a real Engine.

CI runs this suite twice: as is (the async executor is the default) and with
``AIRLOOP_USE_ASYNC=false`` (tasks that name no executor run on the thread executor),
so behaviour that differs without the async executor fails the build. Settings built
here and in the tests read the variable. Tests that are about the async executor
itself -- they share asyncio objects of the test's loop with task code, or check what
runs on the loop thread -- are marked ``async_executor`` and keep it in both passes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from airloop.engine.engine import Engine
from airloop.settings import Settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "async_executor: the test is about the async executor (both CI passes use it)"
    )


@pytest.fixture(autouse=True)
def _default_executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("async_executor") is not None:
        monkeypatch.setenv("AIRLOOP_USE_ASYNC", "true")


#: What the pass under way expects tasks that name no executor to run on (the
#: Makefile sets it with AIRLOOP_USE_ASYNC, so a pass that silently ran on the
#: wrong executor fails: see test_run_basics).
EXPECTED_DEFAULT_EXECUTOR = os.environ.get("AIRLOOP_TEST_DEFAULT_EXECUTOR", "async")


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
