"""Fan-out / fan-in: map over a list that is only known at run time.

    airloop run examples/fanout_fanin.py --param n=1000

``extract`` decides how many items there are; ``score`` runs once per item (async
tasks: they all wait concurrently on one event loop); ``summarize`` gets every
result as one list.
"""

from __future__ import annotations

import asyncio
import random

from airloop import DAG, Param, task

with DAG(
    "fanout_fanin",
    schedule=None,
    params={
        "n": Param(200, type=int, description="How many items to fan out over."),
        "latency": Param(0.5, type=float, description="Seconds each item's I/O takes."),
    },
    tags=["example"],
    doc="Mapping over a run-time list, then reducing the results.",
) as dag:

    @task
    def extract(params: dict[str, int]) -> list[int]:
        # A sync task: offloaded to the executor's thread pool, never blocks the loop.
        return list(range(params["n"]))

    @task(retries=2, retry_delay=0.1)
    async def score(item: int, params: dict[str, float]) -> int:
        # Stands in for an API call or a query: the loop runs the others meanwhile.
        await asyncio.sleep(params["latency"] * random.uniform(0.5, 1.5))
        return item * item

    @task
    async def summarize(scores: list[int]) -> dict[str, int]:
        return {"items": len(scores), "total": sum(scores)}

    summarize(score.expand(item=extract()))
