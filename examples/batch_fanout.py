"""Fan out over AWS Batch: one job per item, all monitored by one batched poller.

    airloop dev aws-emulator &          # or real AWS: set [aws] in airloop.toml
    airloop run examples/batch_fanout.py --param jobs=1000

``plan`` decides the items; ``job`` submits one Batch job per item and waits for it
(10,000 waiting jobs cost 10,000 coroutines and ~100 DescribeJobs calls per poll
round); ``report`` counts how they ended.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from airloop import DAG, Param, task
from airloop.providers.aws.batch import BatchSubmitJobOperator

with DAG(
    "batch_fanout",
    params={
        "jobs": Param(1000, type="integer", minimum=1),
        "seconds": Param(30, type="integer", minimum=0, description="emulator: job length"),
    },
    tags=["example", "aws"],
) as dag:

    @task
    def plan(params: dict[str, int]) -> list[dict[str, Any]]:
        seconds = str(params["seconds"])
        return [
            {
                # Read by the local emulator; real Batch ignores it.
                "environment": [
                    {"name": "AIRLOOP_EMULATOR_SECONDS", "value": seconds},
                    {"name": "ITEM", "value": str(i)},
                ]
            }
            for i in range(params["jobs"])
        ]

    jobs = BatchSubmitJobOperator.partial(
        task_id="job", job_queue="airloop", job_definition="airloop-job", retries=1
    ).expand(container_overrides=plan())

    @task
    def report(results: list[dict[str, Any]]) -> dict[str, int]:
        return dict(Counter(r["status"] for r in results))

    report(jobs.output)
