"""The AWS hub: shared aiobotocore clients and limiters for one engine.

One client per (service, region, endpoint, credentials), reused by every task; its
connection pool is sized to the configured concurrency. Every call goes through
``AwsHub.call``: the (service, action) limiter, then retries with backoff and jitter
on throttling, 5xx and connection errors. Task code gets the hub with
``await AwsHub.current()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.session import get_session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from airloop.providers.aws.limits import ActionLimiter, backoff, is_throttling, is_transient
from airloop.runtime import resources
from airloop.settings import AwsSettings, Settings

log = logging.getLogger(__name__)

ClientKey = tuple[str, str | None, str | None]
_CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, OSError)


class AwsHub:
    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._session = get_session()
        self._stack = AsyncExitStack()
        self._clients: dict[ClientKey, Any] = {}
        self._client_lock = asyncio.Lock()
        self._limiters: dict[tuple[str, str], ActionLimiter] = {}
        self._pollers: dict[tuple[str | None, str | None], Any] = {}
        #: API calls made, by action (each try counts).
        self.calls: Counter[str] = Counter()

    @classmethod
    async def create(cls, settings: Settings) -> AwsHub:
        return cls(settings.aws)

    @classmethod
    async def current(cls) -> AwsHub:
        """The running engine's hub (created on first use)."""
        hub: AwsHub = await resources().get("aws", cls.create)
        return hub

    @classmethod
    async def current_for(cls, engine: Any) -> AwsHub:
        """The hub of ``engine`` (from outside task code: tests, benchmarks)."""
        hub: AwsHub = await engine.resources.get("aws", cls.create)
        return hub

    async def aclose(self) -> None:
        for poller in list(self._pollers.values()):
            await poller.aclose()
        self._pollers.clear()
        await self._stack.aclose()
        self._clients.clear()

    # -- clients --------------------------------------------------------------------

    async def client(
        self, service: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> Any:
        s = self.settings
        region = region or s.region
        endpoint_url = endpoint_url or s.endpoint_url
        key = (service, region, endpoint_url)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._client_lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(
                    max_pool_connections=s.max_concurrency,
                    # One retry layer, ours (see limits.py).
                    retries={"total_max_attempts": 1, "mode": "standard"},
                )
                creds = {}
                if s.access_key_id:
                    creds = {
                        "aws_access_key_id": s.access_key_id,
                        "aws_secret_access_key": s.secret_access_key,
                        "aws_session_token": s.session_token,
                    }
                session = self._session
                if s.profile:
                    from aiobotocore.session import AioSession

                    session = AioSession(profile=s.profile)
                client = await self._stack.enter_async_context(
                    session.create_client(
                        service,
                        region_name=region,
                        endpoint_url=endpoint_url,
                        config=config,
                        **creds,
                    )
                )
                self._clients[key] = client
        return client

    def limiter(self, service: str, action: str) -> ActionLimiter:
        key = (service, action)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = ActionLimiter(
                self.settings.max_concurrency, self.settings.rate_limits.get(action)
            )
            self._limiters[key] = limiter
        return limiter

    # -- calls ----------------------------------------------------------------------

    async def call(
        self,
        service: str,
        action: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """``action`` (e.g. "SubmitJob") with the limiter and retries applied."""
        client = await self.client(service, region=region, endpoint_url=endpoint_url)
        method = getattr(client, xform_name(action))
        limiter = self.limiter(service, action)
        attempt = 0
        while True:
            async with limiter:
                self.calls[action] += 1
                try:
                    response: dict[str, Any] = await method(**params)
                except ClientError as exc:
                    error = exc.response.get("Error", {})
                    code = error.get("Code")
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                    if is_throttling(code, status):
                        limiter.throttled()
                    if not is_transient(code, status) or attempt + 1 >= self.settings.max_attempts:
                        raise
                    why = f"{code} ({status})"
                except _CONNECTION_ERRORS as exc:
                    if attempt + 1 >= self.settings.max_attempts:
                        raise
                    why = type(exc).__name__
                else:
                    limiter.succeeded()
                    return response
            attempt += 1
            delay = backoff(attempt)
            log.debug("%s %s: %s; retry %d in %.2fs", service, action, why, attempt, delay)
            await asyncio.sleep(delay)

    # -- Batch ----------------------------------------------------------------------

    def batch_poller(self, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
        """The one DescribeJobs poller for (region, endpoint)."""
        from airloop.providers.aws.batch_poller import BatchStatusPoller

        key = (region or self.settings.region, endpoint_url or self.settings.endpoint_url)
        poller = self._pollers.get(key)
        if poller is None:
            poller = BatchStatusPoller(self, region=key[0], endpoint_url=key[1])
            self._pollers[key] = poller
        return poller
