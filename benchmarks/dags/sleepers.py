"""N tasks, half sync and half async, each sleeping: the executors benchmark's DAG."""

from __future__ import annotations

import asyncio
import time

from airloop import DAG, Param, task

with DAG(
    "sleepers",
    params={"n": Param(1000, type=int), "seconds": Param(1.0, type=float)},
) as dag:

    @task
    def halves(params: dict[str, float]) -> list[int]:
        return list(range(int(params["n"]) // 2))

    @task
    def sync_sleep(i: int, params: dict[str, float]) -> int:
        time.sleep(params["seconds"])
        return i

    @task
    async def async_sleep(i: int, params: dict[str, float]) -> int:
        await asyncio.sleep(params["seconds"])
        return i

    items = halves()
    sync_sleep.expand(i=items)
    async_sleep.expand(i=items)
