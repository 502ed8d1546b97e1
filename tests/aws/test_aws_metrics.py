"""AWS calls and throttles reach the engine's metrics snapshot and /metrics' text:
a real engine, the real Batch emulator throttling SubmitJob."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from airloop import DAG
from airloop.api.metrics import AirloopCollector
from airloop.engine.engine import Engine
from airloop.engine.stats import engine_stats
from airloop.providers.aws.batch import BatchSubmitJobOperator
from airloop.providers.aws.emulator import BatchEmulator

from .conftest import aws_settings, env

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_calls_and_throttles_by_action(emulator: BatchEmulator, tmp_path: Path) -> None:
    n = 5
    with DAG("aws_metrics", max_active_tasks=n) as dag:
        BatchSubmitJobOperator.partial(task_id="job", job_queue="q", job_definition="jd").expand(
            container_overrides=[env(0.1)] * n
        )
    await emulator.configure(throttle={"SubmitJob": 1})
    try:
        async with Engine(aws_settings(emulator, tmp_path)) as engine:
            result = await engine.run(dag)
            stats = engine_stats(engine)
    finally:
        await emulator.configure(throttle={})
    assert result.counts == {"success": n}
    assert stats is not None
    assert stats.aws_throttles.get("SubmitJob", 0) > 0, "the test did not hit the throttle"
    # Every try counts as a call: the n that succeeded and the throttled ones.
    assert stats.aws_calls["SubmitJob"] == n + stats.aws_throttles["SubmitJob"]
    assert stats.aws_calls.get("DescribeJobs", 0) > 0

    collector = AirloopCollector()
    collector.engine = stats
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    throttled = float(stats.aws_throttles["SubmitJob"])
    assert f'airloop_aws_throttles_total{{action="SubmitJob"}} {throttled}' in text
    assert f'airloop_aws_calls_total{{action="SubmitJob"}} {float(n) + throttled}' in text
