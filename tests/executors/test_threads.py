"""The daemon thread pool: a cancelled call that never started never runs."""

from __future__ import annotations

import asyncio
import threading
import time

from airloop.executors.threads import DaemonThreadPool, run_in_pool


async def test_calls_queued_behind_a_cancelled_running_call_never_run() -> None:
    """A shutdown cancels every task instance at once: the running one is abandoned
    (the pool lends itself a thread), and the queued ones must be dropped before that
    thread can pick them up."""
    loop = asyncio.get_running_loop()
    pool = DaemonThreadPool(1, name="test-pool")
    gate = threading.Event()
    ran: list[int] = []
    holder_started = asyncio.Event()

    def hold(_: object) -> None:
        gate.wait(30)

    def queued(n: object) -> None:
        assert isinstance(n, int)
        ran.append(n)

    holder = asyncio.create_task(
        run_in_pool(pool, hold, None, lambda: loop.call_soon_threadsafe(holder_started.set), None)
    )
    waiting = [
        asyncio.create_task(run_in_pool(pool, queued, n, lambda: None, None)) for n in range(20)
    ]
    await holder_started.wait()
    await asyncio.sleep(0)  # every queued call is submitted
    holder.cancel()  # cancelled first, as a shutdown does in task-instance order
    # Other work on the loop between the two cancellations (a scheduler tick does
    # some): it lets a thread the pool starts meanwhile reach the queue.
    loop.call_soon(time.sleep, 0.05)
    for task in waiting:
        task.cancel()
    results = await asyncio.gather(holder, *waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)

    gate.set()
    threads = list(pool._threads)  # private: join every thread the pool ever ran
    pool.shutdown()
    await asyncio.to_thread(lambda: [t.join(10) for t in threads])
    assert ran == [], f"queued calls ran after their cancellation: {ran}"
