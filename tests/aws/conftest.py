"""One Batch emulator (moto's server, a real HTTP endpoint on 127.0.0.1) per module."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from airloop.providers.aws.emulator import BatchEmulator
from airloop.settings import AwsSettings, Settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emulator() -> AsyncIterator[BatchEmulator]:
    async with BatchEmulator() as emu:
        await emu.setup_batch(queue="q", job_definition="jd")
        yield emu


def aws_settings(emu: BatchEmulator, home: Path, **aws: Any) -> Settings:
    return Settings(
        home=home,
        aws=AwsSettings(
            endpoint_url=emu.endpoint_url,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            **{"batch_poll_interval": 0.3, **aws},
        ),
    )


def env(seconds: float | None = None, exit_code: int | None = None) -> dict[str, Any]:
    """Container overrides that tell the emulator how the job behaves."""
    values = []
    if seconds is not None:
        values.append({"name": "AIRLOOP_EMULATOR_SECONDS", "value": str(seconds)})
    if exit_code is not None:
        values.append({"name": "AIRLOOP_EMULATOR_EXIT_CODE", "value": str(exit_code)})
    return {"environment": values}


def cli_env(emu: BatchEmulator, home: Path, **extra: str) -> dict[str, str]:
    """Environment for an ``airloop`` process pointed at the emulator."""
    return {
        **os.environ,
        "AIRLOOP_HOME": str(home),
        "AIRLOOP_AWS__ENDPOINT_URL": emu.endpoint_url,
        "AIRLOOP_AWS__REGION": "us-east-1",
        "AIRLOOP_AWS__ACCESS_KEY_ID": "testing",
        "AIRLOOP_AWS__SECRET_ACCESS_KEY": "testing",
        "AIRLOOP_AWS__BATCH_POLL_INTERVAL": "0.5",
        **extra,
    }


TIRow = tuple[str, int, str, int, str | None]


def ti_rows(db: Path) -> list[TIRow]:
    """(task_id, map_index, state, try_number, checkpoint) of every task instance, read
    from another process's SQLite store (blocking: call through asyncio.to_thread)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(
                "SELECT task_id, map_index, state, try_number, checkpoint FROM task_instance"
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # still being created
