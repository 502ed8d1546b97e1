"""Fixtures of the several-scheduler suite: a fresh server database (PostgreSQL and
MariaDB in turn, from tests/conftest.py), the Batch emulator, and a cluster of real
``airloop scheduler`` processes over one DAG folder, stopped however the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from airloop.providers.aws.emulator import BatchEmulator

from .cluster import Cluster
from .db import Db, opened

#: Short leases keep the failure tests short (the defaults are 10 s and 2 s).
LEASE_TTL = "6"
LEASE_RENEW = "2"


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[BatchEmulator]:
    async with BatchEmulator() as emu:
        await emu.setup_batch(queue="q", job_definition="jd")
        yield emu


@pytest_asyncio.fixture
async def db(server_database_url: str) -> AsyncIterator[Db]:
    async with opened(server_database_url) as database:
        yield database


@pytest_asyncio.fixture
async def cluster(
    server_database_url: str, tmp_path: Path, emulator: BatchEmulator
) -> AsyncIterator[Cluster]:
    """No scheduler started yet: the test writes its DAGs, then starts them."""
    dags = tmp_path / "dags"
    dags.mkdir()
    env = {
        "AIRLOOP_DATABASE_URL": server_database_url,
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_LEASE_TTL": LEASE_TTL,
        "AIRLOOP_SCHEDULER_LEASE_RENEW_INTERVAL": LEASE_RENEW,
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.5",
        "AIRLOOP_SHUTDOWN_GRACE_SECONDS": "3",
        "AIRLOOP_POOLS": '{"five": 5}',
        "AIRLOOP_AWS__ENDPOINT_URL": emulator.endpoint_url,
        "AIRLOOP_AWS__REGION": "us-east-1",
        "AIRLOOP_AWS__ACCESS_KEY_ID": "testing",
        "AIRLOOP_AWS__SECRET_ACCESS_KEY": "testing",
        "AIRLOOP_AWS__BATCH_POLL_INTERVAL": "0.5",
    }
    group = Cluster(root=tmp_path, dags=dags, env=env)
    try:
        yield group
    finally:
        await group.shutdown()
