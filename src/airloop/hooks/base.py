"""``BaseHook``: the base of every hook, and its connection lookup."""

from __future__ import annotations

import asyncio

from airloop.connections import Connection, aget_connection
from airloop.connections.lookup import run_lookup
from airloop.exceptions import AirloopError


class BaseHook:
    """A client for one external system, configured by a connection id.

    ``await BaseHook.aget_connection(conn_id)`` looks the id up in the configured
    sources (environment, secrets backend, metadata database). The sync
    ``get_connection`` is for code running off the event loop (a sync task in a
    worker thread or process); on the loop it raises instead of blocking it.
    """

    conn_name_attr: str = "conn_id"
    default_conn_name: str = "default_conn_id"
    conn_type: str = ""
    hook_name: str = ""

    @classmethod
    async def aget_connection(cls, conn_id: str) -> Connection:
        return await aget_connection(conn_id)

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """Off the loop only: in a worker thread the lookup runs on the engine's loop
        (its database, its AWS clients) while the thread waits."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run_lookup(lambda: aget_connection(conn_id), f"get_connection({conn_id!r})")
        raise AirloopError(
            f"BaseHook.get_connection({conn_id!r}) called on the event loop: "
            "use 'await BaseHook.aget_connection(...)' in async code"
        )
