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
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from types import TracebackType

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


def is_transient(code: str | None, status: int | None) -> bool:
    """Worth retrying: throttling, server errors."""
    return is_throttling(code, status) or (status is not None and status >= 500)


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
