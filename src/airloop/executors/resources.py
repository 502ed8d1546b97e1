"""Shared, long-lived things task code needs (AWS clients, pollers): one per engine.

A provider asks ``resources().get(key, factory)``: the first caller builds the object,
everyone after shares it, and the engine closes them all when it stops. This is how
10,000 Batch tasks share one client and one status poller instead of owning one each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from airloop.settings import Settings

log = logging.getLogger(__name__)


class Closeable(Protocol):
    async def aclose(self) -> None: ...


R = TypeVar("R", bound=Closeable)


class Resources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The loop the owner runs on (None when made before one runs: then its first
        #: user's). Loop-bound objects (driver connections, aiohttp sessions) are
        #: only shared on it, not on a task's own loop.
        self.loop: asyncio.AbstractEventLoop | None
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._items: dict[Any, Closeable] = {}
        self._locks: dict[Any, asyncio.Lock] = {}
        self._closed = False

    async def get(self, key: Any, factory: Callable[[Settings], Awaitable[R]]) -> R:
        item = self._items.get(key)
        if item is not None:
            return item  # type: ignore[return-value]
        if self._closed:
            raise RuntimeError("the engine's resources are closed")
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            item = self._items.get(key)
            if item is None:
                item = await factory(self.settings)
                self._items[key] = item
        return item  # type: ignore[return-value]

    def peek(self, key: Any) -> Any | None:
        """The item made for ``key``, or None (never creates one: /metrics reads)."""
        return self._items.get(key)

    async def aclose(self) -> None:
        """Close in reverse order of creation (pollers before the clients they use)."""
        self._closed = True
        items = list(self._items.values())[::-1]
        self._items.clear()
        for item in items:
            try:
                await item.aclose()
            except Exception as exc:  # noqa: BLE001 - close the others anyway, say which failed
                log.error("closing %r failed: %s", item, exc)
