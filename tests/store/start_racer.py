"""One contender in the concurrent-starts test: its own process and Store.

Usage: start_racer.py URL RUN_PK TASK_ID MICROSECOND. Opens the store, prints "ready",
waits for a line on stdin (the go, sent to every contender at once), then tries to start try 1 of the task instance
(guard 0) with queued_at at MICROSECOND past a fixed second (its signature), and prints
"started" or "refused".
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from airloop.core.states import TaskState
from airloop.store.records import TIUpdate, WriteBatch
from airloop.store.runs import Store


async def main(url: str, run_pk: int, task_id: str, micro: int) -> None:
    store = await Store.open(url, auto_migrate=False)
    try:
        # A connection is open before the go, so the contenders start close together.
        async with store.engine.connect():
            pass
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        queued_at = datetime(2026, 1, 1, 0, 0, 0, micro, tzinfo=UTC)
        start = TIUpdate(run_pk, task_id, -1, TaskState.QUEUED, 1, queued_at=queued_at, guard=0)
        result = await store.write(WriteBatch(ti_updates=[start]))
        print("refused" if result.refused else "started", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    url, run_pk, task_id, micro = sys.argv[1:5]
    asyncio.run(main(url, int(run_pk), task_id, int(micro)))
