"""One scheduler process for tests/service/test_pool_share.py: an Engine on the shared
database taking its share of the pools (PoolSharer: every 0.2 s, and at once when a
pool runs short), running one DAG whose tasks use the 3-slot pool "p3" and count in a
shared file (under an fcntl lock) how many of them run at once over every process.
Arguments: database URL, registry id, DAG id, counter file, home folder, tasks."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import sys
import time
from pathlib import Path

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import TransientDatabaseError
from airloop.service.pool_share import PoolSharer
from airloop.settings import Settings


def count(path: Path, step: int) -> None:
    with path.open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        seen = json.loads(f.read() or '{"now": 0, "max": 0, "runs": 0}')
        seen["now"] += step
        seen["max"] = max(seen["max"], seen["now"])
        seen["runs"] += step > 0
        f.seek(0)
        f.truncate()
        f.write(json.dumps(seen))


def build(dag_id: str, counter: Path, n: int) -> DAG:
    with DAG(dag_id) as dag:
        for i in range(n):

            @task(task_id=f"t{i}", pool="p3")
            def slot() -> None:
                count(counter, 1)
                time.sleep(0.3)  # task code, on the engine's thread pool
                count(counter, -1)

            slot()
    return dag


async def share_often(sharer: PoolSharer) -> None:
    """The renewal's call (here every 0.2 s) and the early one (checked every 20 ms)."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.02)
        if time.monotonic() - last >= 0.2 or sharer.needs_more():
            try:
                await sharer.share()
            except TransientDatabaseError as exc:  # as the service would: next time
                print(f"share failed: {exc}", file=sys.stderr)
            last = time.monotonic()


async def main(url: str, sid: int, dag_id: str, counter: Path, home: Path, n: int) -> None:
    settings = Settings(home=home, database_url=url)
    async with Engine(settings) as engine:
        sharer = PoolSharer(engine, sid)
        await sharer.share()  # before any run: its share, not the whole pool
        assert engine.pool_shares is not None
        sharing = asyncio.create_task(share_often(sharer))
        try:
            result = await engine.run(build(dag_id, counter, n))
        finally:
            sharing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sharing
        await sharer.release()
    assert result.state is DagRunState.SUCCESS, result
    print("success")


if __name__ == "__main__":
    url, sid, dag_id, counter, home, n = sys.argv[1:]
    asyncio.run(main(url, int(sid), dag_id, Path(counter), Path(home), int(n)))
