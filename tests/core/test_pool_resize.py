"""Pools resized while runs hold slots (the scheduler reads ``slot_pool`` on each
heartbeat): slots taken stay taken, a shrunk pool admits nothing until enough are
released, a deleted pool admits nothing more and is unknown to new runs."""

from __future__ import annotations

import pytest

from airloop.core.pools import PoolError, PoolLedger


def test_growing_a_pool_frees_slots_at_once() -> None:
    ledger = PoolLedger({"default_pool": 10, "p": 1})
    ledger.acquire("p", 1)
    assert ledger.free("p") == 0
    ledger.resize({"default_pool": 10, "p": 3})
    assert ledger.free("p") == 2
    assert ledger.used("p") == 1


def test_a_shrunk_pool_keeps_what_is_taken_and_admits_nothing_more() -> None:
    ledger = PoolLedger({"default_pool": 10, "p": 4})
    ledger.acquire("p", 3)
    ledger.resize({"default_pool": 10, "p": 1})
    assert ledger.free("p") == -2
    with pytest.raises(RuntimeError, match="over-committed"):
        ledger.acquire("p", 1)
    ledger.release("p", 3)
    assert ledger.free("p") == 1


def test_a_new_pool_is_known_and_a_deleted_one_is_not() -> None:
    ledger = PoolLedger({"default_pool": 10, "old": 2})
    ledger.acquire("old", 1)
    ledger.resize({"default_pool": 10, "new": 2})
    ledger.check("t", "new", 2)
    with pytest.raises(
        PoolError, match=r"pool 'old', which does not exist \(pools: default_pool, new\)"
    ):
        ledger.check("t", "old", 1)
    # A run that holds a slot of the deleted pool still releases it.
    assert ledger.free("old") == -1
    ledger.release("old", 1)
    assert ledger.sizes == {"default_pool": 10, "new": 2}
    ledger.resize({"default_pool": 10, "new": 2, "old": 5})
    ledger.check("t", "old", 5)
    assert ledger.free("old") == 5


def test_a_negative_size_is_refused() -> None:
    ledger = PoolLedger({"default_pool": 10})
    with pytest.raises(PoolError, match="negative size"):
        ledger.resize({"default_pool": -1})
    assert ledger.sizes == {"default_pool": 10}
