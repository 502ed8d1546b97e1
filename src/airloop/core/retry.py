"""Retry policy: how many tries, and how long to wait before the next one."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 0
    delay: float = 300.0  # seconds before the first retry
    exponential_backoff: bool = False
    max_delay: float | None = None  # cap for the computed delay, seconds
    jitter: bool = True  # only applied with exponential backoff

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.delay < 0:
            raise ValueError(f"retry_delay must be >= 0 seconds, got {self.delay}")
        if self.max_delay is not None and self.max_delay < 0:
            raise ValueError(f"max_retry_delay must be >= 0 seconds, got {self.max_delay}")

    @property
    def max_tries(self) -> int:
        return self.retries + 1

    def next_delay(self, try_number: int, rng: random.Random) -> float:
        """Seconds to wait after try ``try_number`` (1-based) failed."""
        if try_number < 1:
            raise ValueError(f"try_number is 1-based, got {try_number}")
        if not self.exponential_backoff:
            delay = self.delay
        else:
            # 2**(n-1) * base, capped before jitter so a huge try count cannot overflow.
            exponent = min(try_number - 1, 62)
            delay = self.delay * (2.0**exponent)
            if self.jitter:
                # Jitter upwards only: never sooner than retry_delay * 2**(n-1), as in
                # Airflow, at most half again as long, so that many tasks failing
                # together do not retry in lock-step.
                delay = delay + rng.uniform(0, delay / 2)
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        return delay
