"""Sync and async tasks, retries, and a task that always fails.

    airloop run examples/mixed_retries.py        # exits 1: the run fails

``flaky`` fails on its first try and succeeds on the second. ``broken`` fails on
every try, so ``publish`` (downstream of it) ends upstream_failed and the run
fails (as in Airflow, a run fails when one of its leaf tasks failed or is
upstream_failed), while ``cleanup`` (trigger_rule all_done) still runs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from airloop import DAG, BaseOperator, Context, TriggerRule, task


class WaitOperator(BaseOperator):
    """A classic operator with an async execute()."""

    def __init__(self, *, seconds: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.seconds = seconds

    async def execute(self, context: Context) -> float:
        await asyncio.sleep(self.seconds)
        return self.seconds


with DAG(
    "mixed_retries",
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0.2)},
    tags=["example"],
) as dag:

    @task
    def blocking_io() -> str:
        time.sleep(0.2)  # sync code runs in the thread pool, the loop stays free
        return "read"

    @task(retry_exponential_backoff=True, retry_delay=0.1, max_retry_delay=1)
    async def flaky(ti: object, try_number: int) -> str:
        if try_number == 1:
            raise ConnectionError("the service was not ready (first try fails on purpose)")
        return f"ok on try {try_number}"

    @task(retries=2, retry_delay=0.1)
    def broken() -> None:
        raise ValueError("this task always fails")

    @task
    async def publish(a: str, b: str, c: None) -> None:
        print(a, b, c)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup() -> str:
        return "cleaned up"

    wait = WaitOperator(task_id="wait", seconds=0.1)
    failing = broken()
    wait >> publish(blocking_io(), flaky(), failing)
    failing >> cleanup()
