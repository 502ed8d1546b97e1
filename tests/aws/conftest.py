"""One Batch emulator (moto's server, a real HTTP endpoint on 127.0.0.1) per module."""

from __future__ import annotations

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
