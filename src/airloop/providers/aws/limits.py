"""Per-(service, action) limits: concurrency, an adaptive rate, backoff with jitter.

One retry layer: botocore is configured to try once (``total_max_attempts=1``) and
every retry happens here, where it also feeds the rate limiter. Two layers multiply
(botocore's 3 tries inside our N would make 3N calls under a throttle); botocore's
"standard" mode also keeps a retry *quota* that a throttled burst exhausts (measured
here: 724 of 1,000 SubmitJob calls failed under a 50/s throttle).

The rate adapts like TCP's congestion window (AIMD): a throttling answer cuts the
rate to 70% of what was actually achieved over the last second (at most one cut per
second: a burst of throttled calls is one signal, not twenty), and each success adds
back about one call per second per second, up to the configured rate.

What a failed call tells us (``classify``) decides whether it may be tried again:
a throttle or a refused connection says the call was NOT executed; a 5xx, a read
timeout or a dropped connection says nothing (it may have been executed); any other
4xx is a definitive answer. Only calls that are safe to repeat are tried again after
an ambiguous failure; the others are reconciled first (see ``AwsHub.call``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from enum import Enum
from types import TracebackType

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)

#: Error codes AWS services use to say "slow down".
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "BandwidthLimitExceeded",
    }
)


def is_throttling(code: str | None, status: int | None) -> bool:
    return code in THROTTLING_CODES or status == 429


#: Actions that start something and carry no idempotency token: after a lost answer a
#: second try could start it twice (a second Batch job, billed). They are never retried
#: blindly. A provider adding such an action lists it here or passes
#: ``safe_to_repeat=False`` to ``AwsHub.call``. Actions whose request has an
#: idempotency token (``clientToken``) are safe: the hub sends one token on every try.
NOT_SAFE_TO_REPEAT: frozenset[tuple[str, str]] = frozenset({("batch", "SubmitJob")})


class Outcome(Enum):
    """What a failed call says about its effect."""

    FAILED = "failed"  # a definitive answer (validation, not found, access denied)
    THROTTLED = "throttled"  # not executed: slow down (feeds the rate limiter)
    NOT_EXECUTED = "not executed"  # the request never reached AWS
    AMBIGUOUS = "ambiguous"  # executed or not: nobody can tell from here


#: The exceptions ``classify`` understands; anything else is a bug, not an AWS failure.
CALL_ERRORS = (ClientError, ConnectionError, HTTPClientError, OSError)


def classify(exc: BaseException) -> tuple[Outcome, str]:
    """The outcome of a failed call and a short cause for the logs."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        cause = f"{code} ({status})"
        if is_throttling(code, status):
            return Outcome.THROTTLED, cause
        if status is not None and status >= 500:
            return Outcome.AMBIGUOUS, cause
        return Outcome.FAILED, cause
    cause = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConnectTimeoutError):
        return Outcome.NOT_EXECUTED, cause
    if isinstance(exc, EndpointConnectionError):
        # aiobotocore raises this both when it could not connect (nothing was sent)
        # and when an open connection failed mid-request (the call may have run).
        underlying = exc.kwargs.get("error")
        if isinstance(underlying, aiohttp.ClientConnectorError):
            return Outcome.NOT_EXECUTED, cause
    return Outcome.AMBIGUOUS, cause


def backoff(attempt: int, base: float = 0.2, cap: float = 20.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2.0 ** min(attempt, 30)))


class ActionLimiter:
    """Concurrency slots plus a paced, adaptive rate for one (service, action)."""

    def __init__(self, concurrency: int, rate: float | None = None, min_rate: float = 1.0) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.max_rate = rate
        self.rate = rate
        self.min_rate = min_rate
        self._next = 0.0  # monotonic time of the next free start
        self._done: deque[float] = deque()
        self._last_cut = -1e9
        self.throttles = 0

    async def __aenter__(self) -> ActionLimiter:
        await self._slots.acquire()
        try:
            if self.rate is not None:
                now = time.monotonic()
                start = max(now, self._next)
                self._next = start + 1.0 / self.rate
                if start > now:
                    await asyncio.sleep(start - now)
        except BaseException:
            self._slots.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()

    def _achieved(self) -> float:
        now = time.monotonic()
        while self._done and self._done[0] < now - 1.0:
            self._done.popleft()
        return float(len(self._done))

    def succeeded(self) -> None:
        self._done.append(time.monotonic())
        if self.rate is not None:
            self.rate += 1.0 / self.rate
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)

    def throttled(self) -> None:
        self.throttles += 1
        now = time.monotonic()
        if now - self._last_cut < 1.0:
            return  # the same burst: already slowed down for it
        self._last_cut = now
        achieved = self._achieved()
        current = achieved if achieved >= self.min_rate else (self.rate or self.min_rate)
        self.rate = max(self.min_rate, current * 0.7)
