"""Browser tests: one mapped task of 50 instances (a bar in the grid), slow enough
to watch the states change live."""

import asyncio

from airloop import DAG, task

with DAG("ui_mapped", tags=["ui-test"]) as dag:

    @task
    def items() -> list[int]:
        return list(range(50))

    @task
    async def work(item: int) -> int:
        await asyncio.sleep(0.05 * (item % 10))
        return item

    @task
    async def slow_start() -> None:
        await asyncio.sleep(3)

    numbers = items()
    slow_start() >> numbers
    work.expand(item=numbers)
