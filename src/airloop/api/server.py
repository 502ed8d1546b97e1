"""The API server on uvicorn, in the caller's event loop (``airloop api-server``)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Generator

import uvicorn

from airloop.api.app import create_app
from airloop.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn's server, without re-raising the stopping signal after a graceful stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def serve(settings: Settings, host: str, port: int) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        proxy_headers=True,  # X-Forwarded-For/-Proto from a proxy on loopback only
        server_header=False,
        log_level="info",
    )
    await _Server(config).serve()
