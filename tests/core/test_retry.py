"""RetryPolicy: validation, max_tries and next_delay (fixed, exponential, capped, jittered)."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest

from airloop.core.retry import RetryPolicy


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.retries == 0
    assert policy.max_tries == 1
    assert policy.delay == 300.0
    assert policy.exponential_backoff is False
    assert policy.max_delay is None
    assert policy.jitter is True


def test_policy_is_frozen() -> None:
    policy = RetryPolicy(retries=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retries = 2  # type: ignore[misc]


@pytest.mark.parametrize(("retries", "max_tries"), [(0, 1), (1, 2), (3, 4), (100, 101)])
def test_max_tries_is_retries_plus_one(retries: int, max_tries: int) -> None:
    assert RetryPolicy(retries=retries).max_tries == max_tries


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries must be >= 0, got -1"),
        ({"retries": -100}, "retries must be >= 0, got -100"),
        ({"delay": -0.001}, "retry_delay must be >= 0 seconds, got -0.001"),
        ({"delay": -5.0}, "retry_delay must be >= 0 seconds, got -5.0"),
        ({"max_delay": -1.0}, "max_retry_delay must be >= 0 seconds, got -1.0"),
        ({"retries": 2, "delay": 1.0, "max_delay": -0.5}, "max_retry_delay must be >= 0 seconds"),
    ],
)
def test_validation_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retries": 0},
        {"delay": 0.0},
        {"max_delay": 0.0},
        {"retries": 5, "delay": 0.0, "exponential_backoff": True, "max_delay": 0.0},
    ],
)
def test_zero_values_are_valid(kwargs: dict[str, Any]) -> None:
    RetryPolicy(**kwargs)


@pytest.mark.parametrize("try_number", [1, 2, 3, 10, 1000])
@pytest.mark.parametrize("delay", [0.0, 1.5, 300.0])
def test_fixed_delay_is_the_same_for_every_try(try_number: int, delay: float) -> None:
    policy = RetryPolicy(retries=5, delay=delay)
    assert policy.next_delay(try_number, random.Random(0)) == delay


def test_fixed_delay_ignores_jitter_and_does_not_touch_the_rng() -> None:
    rng = random.Random(7)
    before = rng.getstate()
    for jitter in (True, False):
        policy = RetryPolicy(retries=3, delay=10.0, jitter=jitter)
        assert [policy.next_delay(n, rng) for n in (1, 2, 3)] == [10.0, 10.0, 10.0]
    assert rng.getstate() == before


@pytest.mark.parametrize(
    ("try_number", "expected"),
    [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 160.0), (11, 10240.0)],
)
def test_exponential_backoff_doubles_per_try(try_number: int, expected: float) -> None:
    policy = RetryPolicy(retries=20, delay=10.0, exponential_backoff=True, jitter=False)
    assert policy.next_delay(try_number, random.Random(0)) == expected
    assert expected == 10.0 * 2 ** (try_number - 1)


def test_exponential_without_jitter_does_not_touch_the_rng() -> None:
    rng = random.Random(7)
    before = rng.getstate()
    policy = RetryPolicy(retries=3, delay=1.0, exponential_backoff=True, jitter=False)
    assert [policy.next_delay(n, rng) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert rng.getstate() == before


@pytest.mark.parametrize(
    ("exponential", "try_number", "max_delay", "expected"),
    [
        (False, 1, 60.0, 60.0),  # fixed 300 s capped at 60
        (False, 1, 300.0, 300.0),  # cap equal to the delay
        (False, 1, 1000.0, 300.0),  # cap above the delay: no effect
        (False, 1, 0.0, 0.0),
        (True, 1, 1000.0, 300.0),
        (True, 2, 1000.0, 600.0),
        (True, 3, 1000.0, 1000.0),  # 1200 capped
        (True, 4, 1000.0, 1000.0),  # 2400 capped
        (True, 10_000, 1000.0, 1000.0),  # huge try counts do not overflow
    ],
)
def test_max_delay_caps_the_delay(
    exponential: bool, try_number: int, max_delay: float, expected: float
) -> None:
    policy = RetryPolicy(
        retries=3, delay=300.0, exponential_backoff=exponential, max_delay=max_delay, jitter=False
    )
    assert policy.next_delay(try_number, random.Random(0)) == expected


@pytest.mark.parametrize("try_number", [63, 64, 1_000, 10**9])
def test_huge_try_number_without_cap_stays_finite(try_number: int) -> None:
    policy = RetryPolicy(retries=1, delay=1.0, exponential_backoff=True, jitter=False)
    delay = policy.next_delay(try_number, random.Random(0))
    assert math.isfinite(delay)
    assert delay == 2.0**62


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
@pytest.mark.parametrize("try_number", [1, 2, 3, 6, 20])
def test_jitter_never_retries_sooner_than_the_backoff(seed: int, try_number: int) -> None:
    policy = RetryPolicy(retries=30, delay=8.0, exponential_backoff=True, jitter=True)
    full = 8.0 * 2 ** (try_number - 1)
    rng = random.Random(seed)
    samples = [policy.next_delay(try_number, rng) for _ in range(500)]
    assert all(full <= d <= full * 1.5 for d in samples)
    # It is actually random: the samples spread over the range, not one value.
    assert len(set(samples)) == 500
    assert min(samples) < full * 1.1
    assert max(samples) > full * 1.4


def test_jitter_is_drawn_upwards_from_the_given_rng() -> None:
    policy = RetryPolicy(retries=5, delay=10.0, exponential_backoff=True, jitter=True)
    rng = random.Random(1234)
    twin = random.Random(1234)
    for try_number in (1, 2, 3, 4):
        full = 10.0 * 2 ** (try_number - 1)
        expected = full + twin.uniform(0, full / 2)
        assert policy.next_delay(try_number, rng) == expected


def test_jitter_is_reproducible_with_the_same_seed() -> None:
    policy = RetryPolicy(retries=5, delay=3.0, exponential_backoff=True)
    a = [policy.next_delay(n, random.Random(99)) for n in range(1, 6)]
    b = [policy.next_delay(n, random.Random(99)) for n in range(1, 6)]
    c = [policy.next_delay(n, random.Random(100)) for n in range(1, 6)]
    assert a == b
    assert a != c


@pytest.mark.parametrize("seed", range(20))
def test_cap_applies_after_jitter(seed: int) -> None:
    # The uncapped jittered delay for try 5 is in [160, 240]: always capped to 50.
    policy = RetryPolicy(
        retries=5, delay=10.0, exponential_backoff=True, jitter=True, max_delay=50.0
    )
    assert policy.next_delay(5, random.Random(seed)) == 50.0
    # Try 1 is in [10, 15]: never reaches the cap.
    assert 10.0 <= policy.next_delay(1, random.Random(seed)) <= 15.0
