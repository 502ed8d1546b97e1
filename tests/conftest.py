"""Shared fixtures: a fresh database on each supported backend.

PostgreSQL (127.0.0.1:5432, trust auth, user postgres/root) and MariaDB (127.0.0.1:3306,
root, no password) run on the development and CI machines. Each test gets a database
of its own, created and dropped here, so runs never collide. Off CI an absent server
skips those tests with a one-line reason; under CI (CI=true) it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

PG_ADMIN = os.environ.get("AIRLOOP_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("AIRLOOP_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306/test")
BACKENDS = ["sqlite", "postgresql", "mariadb"]


def _unavailable(backend: str, exc: BaseException) -> None:
    message = f"{backend} server not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: CI needs it", pytrace=False)
    pytest.skip(message)


async def _admin(url: str, statements: list[str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"
        return
    async for url in _server_database(request.param):
        yield url


@pytest_asyncio.fixture(params=["postgresql", "mariadb"])
async def server_database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A new, empty database on each database server."""
    async for url in _server_database(request.param):
        yield url


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (what only PostgreSQL has: LISTEN/NOTIFY)."""
    async for url in _server_database("postgresql"):
        yield url


async def _server_database(backend: str) -> AsyncIterator[str]:
    name = f"airloop_t_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN if backend == "postgresql" else MY_ADMIN
    try:
        await _admin(admin, [f"CREATE DATABASE {name}"])
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        _unavailable(backend, exc)
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        drop = f"DROP DATABASE {name}" + (" WITH (FORCE)" if backend == "postgresql" else "")
        await _admin(admin, [drop])


@pytest.fixture(autouse=True)
def _check_planner_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plan made in a test is followed by RunPlanner.validate(): the incremental
    counters are recomputed from scratch and compared (ADR 0019)."""
    from airloop.core.planner import RunPlanner

    monkeypatch.setattr(RunPlanner, "checking", True)
