"""SharedReads: identical reads by many waiters made once, never staler than the
changes a caller knows of (ADR 0036)."""

from __future__ import annotations

import asyncio

import pytest

from airloop.store.run_events import SHARED_READ_SLOTS, RunEvents


class Source:
    """A read that blocks until released and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most = 0
        self.gate = asyncio.Event()
        self.value = "v0"

    async def fetch(self) -> str:
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        seen = self.value  # what the read "sees" when it starts
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        return seen


async def test_concurrent_identical_reads_share_one_fetch() -> None:
    events, src = RunEvents(), Source()
    readers = [asyncio.create_task(events.reads.read("k", src.fetch)) for _ in range(500)]
    await asyncio.sleep(0)
    src.gate.set()
    assert await asyncio.gather(*readers) == ["v0"] * 500
    assert src.calls == 1
    assert events.reads.started == 1


async def test_a_change_after_a_read_began_starts_a_fresh_read() -> None:
    events, src = RunEvents(), Source()
    first = asyncio.create_task(events.reads.read("k", src.fetch))
    while src.calls == 0:  # noqa: ASYNC110 - until the first read has begun (seen v0)
        await asyncio.sleep(0)
    src.value = "v1"
    events.changed(run_pks=(1,))  # committed, then announced
    second = asyncio.create_task(events.reads.read("k", src.fetch))
    await asyncio.sleep(0)
    src.gate.set()
    assert await first == "v0"
    assert await second == "v1"  # not joined to the stale read
    assert src.calls == 2


async def test_reads_of_different_keys_are_bounded() -> None:
    events, src = RunEvents(), Source()
    readers = [asyncio.create_task(events.reads.read(i, src.fetch)) for i in range(20)]
    await asyncio.sleep(0.01)
    assert src.most == SHARED_READ_SLOTS
    src.gate.set()
    await asyncio.gather(*readers)
    assert src.calls == 20


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    events, src = RunEvents(), Source()
    first = asyncio.create_task(events.reads.read("k", src.fetch))
    second = asyncio.create_task(events.reads.read("k", src.fetch))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    src.gate.set()
    assert await second == "v0"


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    events = RunEvents()
    calls = 0

    async def boom() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(events.reads.read("k", boom) for _ in range(3)), return_exceptions=True
    )
    assert [str(r) for r in results] == ["database down"] * 3
    assert calls == 1
    with pytest.raises(RuntimeError):
        await events.reads.read("k", boom)
    assert calls == 2


async def test_aclose_cancels_reads_in_flight() -> None:
    events, src = RunEvents(), Source()
    reader = asyncio.create_task(events.reads.read("k", src.fetch))
    await asyncio.sleep(0)
    await events.reads.aclose()
    with pytest.raises(asyncio.CancelledError):
        await reader
