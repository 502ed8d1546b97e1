"""The AWS hub: shared aiobotocore clients and limiters for one engine.

One client per (service, region, endpoint, credentials), reused by every task; its
connection pool is sized to the configured concurrency. Every call goes through
``AwsHub.call``: the (service, action) limiter, then retries with backoff and jitter
on throttling, 5xx and connection errors -- except that a call which is not safe to
repeat (one that starts something: SubmitJob) is never repeated after an ambiguous
failure before a reconcile hook has shown that the first try did not take effect.
Every retry is logged at INFO on ``airloop.task.aws``, so it lands in the log of the
task that made the call. Task code gets the hub with ``await AwsHub.current()``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.session import get_session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel

from airloop.exceptions import AirloopError
from airloop.providers.aws.limits import (
    CALL_ERRORS,
    NOT_SAFE_TO_REPEAT,
    ActionLimiter,
    Outcome,
    backoff,
    classify,
)
from airloop.providers.aws.parsing import use_lean_parsers
from airloop.runtime import resources
from airloop.settings import AwsSettings, Settings

# A child of "airloop.task" (INFO while an engine runs): records emitted while a task
# makes the call are routed to that task's log file.
log = logging.getLogger("airloop.task.aws")


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """Keys for a client other than the settings' (an ``aws_conn_id``'s login/password)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


ClientKey = tuple[str, str | None, str | None, AwsCredentials | None]
#: Called after an ambiguous failure of a call that is not safe to repeat: the answer
#: the first try would have given if it took effect (e.g. the job found by its name),
#: or None when it did not (then the call is sent again).
Reconcile = Callable[[], Awaitable[dict[str, Any] | None]]


class AwsCallError(AirloopError):
    """An AWS call failed for good; says after how many tries and why."""

    def __init__(
        self, service: str, action: str, attempts: int, elapsed: float, cause: BaseException
    ) -> None:
        self.service = service
        self.action = action
        self.attempts = attempts
        self.cause = cause
        response = cause.response if isinstance(cause, ClientError) else {}
        self.code: str | None = response.get("Error", {}).get("Code")
        self.status: int | None = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        super().__init__(self._message(elapsed))

    def _describe_cause(self) -> str:
        if isinstance(self.cause, ClientError):
            message = self.cause.response.get("Error", {}).get("Message") or ""
            return f"{self.code} ({self.status}): {message}"
        return f"{type(self.cause).__name__}: {self.cause}"

    def _message(self, elapsed: float) -> str:
        tries = "attempt" if self.attempts == 1 else "attempts"
        return (
            f"{self.service} {self.action} failed after {self.attempts} {tries} "
            f"in {elapsed:.1f}s: {self._describe_cause()}"
        )


class AmbiguousCallError(AwsCallError):
    """A call that is not safe to repeat lost its answer and could not be reconciled."""

    def _message(self, elapsed: float) -> str:
        return (
            f"{self.service} {self.action} may have taken effect: its answer was lost "
            f"({self._describe_cause()}) at attempt {self.attempts}, it is not safe to "
            "repeat, and whether it took effect could not be checked"
        )


def pin_idempotency_tokens(model: ServiceModel, action: str, params: dict[str, Any]) -> bool:
    """Fill the action's idempotency-token members once; True if it has any.

    botocore fills a missing token with a fresh uuid on *every* call, so each of our
    retries would be a new request to the service; one token for all tries makes the
    service answer a repeat with the first try's result.
    """
    tokens = _token_members(model, action)
    for name in tokens:
        params.setdefault(name, str(uuid.uuid4()))
    return bool(tokens)


@functools.lru_cache(maxsize=512)
def _token_members(model: ServiceModel, action: str) -> tuple[str, ...]:
    """The action's idempotency-token members: looked up once per (model, action), not
    on each of the 10,000s of calls a fan-out makes."""
    shape = model.operation_model(action).input_shape
    if shape is None:
        return ()
    return tuple(
        name for name, member in shape.members.items() if member.metadata.get("idempotencyToken")
    )


class AwsHub:
    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        # Lean JSON parsing: the poller's DescribeJobs answers are most of what the hub
        # parses (see parsing.py).
        self._session = use_lean_parsers(get_session())
        self._stack = AsyncExitStack()
        self._clients: dict[ClientKey, Any] = {}
        self._client_lock = asyncio.Lock()
        self._limiters: dict[tuple[str, str], ActionLimiter] = {}
        self._pollers: dict[tuple[str | None, str | None], Any] = {}
        #: API calls made, by action (each try counts).
        self.calls: Counter[str] = Counter()
        #: Ambiguous failures of calls not safe to repeat, by action, and how many of
        #: them the reconcile hook found had taken effect.
        self.ambiguous: Counter[str] = Counter()
        self.reconciled: Counter[str] = Counter()

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

    def throttles(self) -> Counter[str]:
        """Throttled answers so far, by action (over every service and region)."""
        found: Counter[str] = Counter()
        for (_, action), limiter in list(self._limiters.items()):
            found[action] += limiter.throttles
        return found

    async def aclose(self) -> None:
        for poller in list(self._pollers.values()):
            await poller.aclose()
        self._pollers.clear()
        await self._stack.aclose()
        self._clients.clear()

    # -- clients --------------------------------------------------------------------

    async def client(
        self,
        service: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        credentials: AwsCredentials | None = None,
    ) -> Any:
        """The shared client for (service, region, endpoint, credentials); without
        ``credentials`` the settings' keys (or profile, or botocore's default chain)."""
        s = self.settings
        region = region or s.region
        endpoint_url = endpoint_url or s.endpoint_url
        key = (service, region, endpoint_url, credentials)
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
                if credentials is not None:
                    creds = {
                        "aws_access_key_id": credentials.access_key_id,
                        "aws_secret_access_key": credentials.secret_access_key,
                        "aws_session_token": credentials.session_token,
                    }
                elif s.access_key_id:
                    creds = {
                        "aws_access_key_id": s.access_key_id,
                        "aws_secret_access_key": s.secret_access_key,
                        "aws_session_token": s.session_token,
                    }
                session = self._session
                if s.profile and credentials is None:
                    from aiobotocore.session import AioSession

                    session = use_lean_parsers(AioSession(profile=s.profile))
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
        safe_to_repeat: bool | None = None,
        reconcile: Reconcile | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        credentials: AwsCredentials | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """``action`` (e.g. "SubmitJob") with the limiter and retries applied.

        ``safe_to_repeat`` (default: not in ``NOT_SAFE_TO_REPEAT``, or the action has an
        idempotency token) says whether a try may be sent again after an *ambiguous*
        failure (5xx, read timeout, dropped connection). When it may not, ``reconcile``
        is asked whether the failed try took effect: its answer is returned if so, and
        the call is sent again only if not; without ``reconcile`` the call fails with
        ``AmbiguousCallError``. Throttling and refused connections are retried either
        way (nothing was executed); other 4xx answers fail at once. ``before_send`` is
        awaited once, holding the limiter's slot, just before the first try goes out
        (an operator records there that it is about to start something).
        ``credentials``: the client's keys, when not the settings' (see ``client``).
        """
        client = await self.client(
            service, region=region, endpoint_url=endpoint_url, credentials=credentials
        )
        method = getattr(client, xform_name(action))
        limiter = self.limiter(service, action)
        has_token = pin_idempotency_tokens(client.meta.service_model, action, params)
        if safe_to_repeat is None:
            safe_to_repeat = has_token or (service, action) not in NOT_SAFE_TO_REPEAT
        limit = self.settings.max_attempts
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            async with limiter:
                if before_send is not None:
                    await before_send()
                    before_send = None
                self.calls[action] += 1
                try:
                    response: dict[str, Any] = await method(**params)
                except CALL_ERRORS as exc:
                    failure: BaseException = exc
                    outcome, cause = classify(exc)
                    if outcome is Outcome.THROTTLED:
                        limiter.throttled()
                else:
                    limiter.succeeded()
                    return response
            where = f"{service} {action} attempt {attempt}/{limit}"
            note = ""
            if outcome is Outcome.FAILED:
                raise AwsCallError(service, action, attempt, time.monotonic() - started, failure)
            if outcome is Outcome.AMBIGUOUS and not safe_to_repeat:
                self.ambiguous[action] += 1
                if reconcile is None:
                    raise AmbiguousCallError(
                        service, action, attempt, time.monotonic() - started, failure
                    )
                log.info(
                    "%s: the answer was lost (%s); checking whether it took effect", where, cause
                )
                try:
                    found = await reconcile()
                except Exception as exc:
                    raise AmbiguousCallError(
                        service, action, attempt, time.monotonic() - started, failure
                    ) from exc
                if found is not None:
                    self.reconciled[action] += 1
                    log.info("%s took effect: using what it created", where)
                    return found
                note = "; not created: sending it again"
            if attempt >= limit:
                raise AwsCallError(service, action, attempt, time.monotonic() - started, failure)
            delay = backoff(attempt)
            log.info("%s failed (%s)%s; retrying in %.2fs", where, cause, note, delay)
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
