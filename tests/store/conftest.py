"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from airloop.store.runs import Store


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A store opened on a fresh database of each backend."""
    store = await Store.open(database_url)
    try:
        yield store
    finally:
        await store.close()
