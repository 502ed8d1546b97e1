"""At most N requests handled at once (pure ASGI middleware): ``airloop standalone``
bounds the share of the scheduler's event loop the API and UI take (ADR 0040).

Every request in progress adds its steps to each turn of the event loop, and the
scheduler's own callbacks wait behind all of them: 50 polling clients meant 50 request
steps per turn. With a limit, a request beyond it waits on a semaphore before any of
its work starts (parsed, but nothing read from the database, nothing serialised), so a
turn of the loop carries at most ``limit`` request steps however many clients poll.
Clients see a longer answer time, never an error.

Not counted (they would hold a place for as long as they are open, or must answer
even when the UI is busy): server-sent event streams and ``/metrics``. Nor are the
calls a page makes to the API through the app itself (``airloop.api.ui.api_client``):
they run in the page request's context, which holds its place already (counting them
would let N pages, each waiting for its own API call, take every place for good).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

#: Paths never made to wait: long-lived streams, and the scrape that measures the lag.
UNCOUNTED_PREFIXES = ("/ui/stream/", "/metrics")


#: Set while a counted request runs: calls it makes through the app (in its context,
#: or in tasks it starts, which copy the context) are part of it.
_holding: ContextVar[bool] = ContextVar("airloop_request_place", default=False)


def is_counted(path: str) -> bool:
    return not (path.startswith(UNCOUNTED_PREFIXES) or path.endswith("/stream"))


class RequestLimitMiddleware:
    """At most ``limit`` counted HTTP requests in the app at once; others wait in
    arrival order."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the request limit must be at least 1, not {limit}")
        self.app = app
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_counted(scope["path"]) or _holding.get():
            await self.app(scope, receive, send)
            return
        await self._slots.acquire()
        token = _holding.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _holding.reset(token)
            self._slots.release()
