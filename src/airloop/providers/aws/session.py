"""aiobotocore sessions and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config


@asynccontextmanager
async def client_context(service: str, **kwargs: Any) -> AsyncIterator[Any]:
    """A one-off client (setup scripts, tests). Tasks use the shared ClientRegistry."""
    config = kwargs.pop("config", None) or Config(retries={"mode": "standard", "max_attempts": 3})
    async with get_session().create_client(service, config=config, **kwargs) as client:
        yield client
