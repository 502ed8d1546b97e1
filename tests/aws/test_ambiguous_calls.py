"""Calls that are not safe to repeat (SubmitJob) when their answer is lost.

The emulator executes the call and then answers 500 (``lose_answers``) or drops the
connection (``drop_connections``): the caller cannot tell whether the job exists.
Every task must end up with exactly one job, found again by its name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from airloop import DAG, DagRunState
from airloop.engine.engine import Engine
from airloop.providers.aws.batch import BatchSubmitJobOperator, batch_job_name
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AmbiguousCallError, AwsCallError, AwsHub

from .conftest import aws_settings, env

pytestmark = pytest.mark.asyncio(loop_scope="module")
FAULTS = ("server_errors", "lose_answers", "drop_connections", "throttle")


@pytest_asyncio.fixture(loop_scope="module")
async def faulty(emulator: BatchEmulator) -> AsyncIterator[BatchEmulator]:
    """The shared emulator; every fault is cleared after the test."""
    await emulator.configure(default_seconds=0.3, phase_seconds=[0.02, 0.02, 0.02, 0.02])
    try:
        yield emulator
    finally:
        await emulator.configure(**{fault: {} for fault in FAULTS}, seed=None)


def fanout(dag_id: str, n: int, **kwargs: Any) -> DAG:
    with DAG(dag_id, max_active_tasks=n) as dag:
        BatchSubmitJobOperator.partial(
            task_id="job", job_queue="q", job_definition="jd", retries=0, **kwargs
        ).expand(container_overrides=[env(0.2)] * n)
    return dag


@pytest.mark.parametrize(
    ("fault", "probability", "n"),
    [
        ("lose_answers", 0.05, 200),
        ("lose_answers", 1.0, 20),
        ("drop_connections", 0.05, 200),
        ("drop_connections", 1.0, 20),
    ],
)
async def test_lost_submit_answers_create_exactly_one_job_per_task(
    faulty: BatchEmulator, tmp_path: Path, fault: str, probability: float, n: int
) -> None:
    dag_id = f"lost-{fault}-{int(probability * 100)}"
    before = await faulty.stats()
    await faulty.configure(seed=7, **{fault: {"SubmitJob": probability}})
    async with Engine(aws_settings(faulty, tmp_path)) as engine:
        result = await engine.run(fanout(dag_id, n), run_id="r1")
        xcoms = [json.loads(x.value) for x in await engine.store.xcom_values(result.run_pk)]
    stats = await faulty.stats()
    lost = stats["faults"][fault]["SubmitJob"] - before["faults"].get(fault, {}).get("SubmitJob", 0)
    assert lost > 0, "the test injected no fault"
    assert result.counts == {"success": n}, result.failed
    assert stats["jobs"] - before["jobs"] == n, "exactly one Batch job per task"
    assert stats["submitted_more_than_once"] == before["submitted_more_than_once"]
    names = {batch_job_name(dag_id, "r1", "job", i, 1) for i in range(n)}
    assert {x["job_name"] for x in xcoms} == names
    assert len({x["job_id"] for x in xcoms}) == n


async def test_a_submit_that_did_not_happen_is_sent_again(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    """A 500 *before* executing: the name lookup finds nothing, the job is submitted."""
    n = 30
    before = await faulty.stats()
    await faulty.configure(seed=3, server_errors={"SubmitJob": 0.3})
    async with Engine(aws_settings(faulty, tmp_path)) as engine:
        result = await engine.run(fanout("not-done", n, name_lookup_delays=(0.0, 0.05)))
        hub = await AwsHub.current_for(engine)
    stats = await faulty.stats()
    assert result.counts == {"success": n}, result.failed
    assert hub.calls["SubmitJob"] > n, "no submit failed: the test proves nothing"
    assert stats["jobs"] - before["jobs"] == n
    assert stats["submitted_more_than_once"] == before["submitted_more_than_once"]


async def test_retries_are_logged_in_the_task_log_and_the_error_counts_attempts(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    await faulty.configure(server_errors={"SubmitJob": 1.0})
    settings = aws_settings(faulty, tmp_path, max_attempts=3)
    async with Engine(settings) as engine:
        result = await engine.run(fanout("give-up", 1, name_lookup_delays=(0.0,)))
        (log_row,) = await engine.store.log_paths(result.run_pk)
    assert result.state is DagRunState.FAILED
    ((_, error),) = result.failed
    assert "batch SubmitJob failed after 3 attempts" in error, error
    assert "max retries: 0" not in error
    text = await asyncio.to_thread(Path(log_row.path).read_text)
    for attempt in (1, 2):
        assert f"INFO airloop.task.aws - batch SubmitJob attempt {attempt}/3 failed" in text, text
    assert "ServerException (500)" in text
    assert "retrying in" in text
    assert "not created: sending it again" in text


async def test_throttled_retries_are_logged_in_the_task_log(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    n = 5
    await faulty.configure(throttle={"SubmitJob": 1})
    async with Engine(aws_settings(faulty, tmp_path)) as engine:
        result = await engine.run(fanout("throttled-log", n))
        paths = [row.path for row in await engine.store.log_paths(result.run_pk)]
    assert result.counts == {"success": n}
    texts = [await asyncio.to_thread(Path(p).read_text) for p in paths]
    retried = [t for t in texts if "TooManyRequestsException (429)); retrying in" in t]
    assert retried, "\n---\n".join(texts)


async def test_an_ambiguous_failure_without_a_reconcile_hook_is_never_repeated(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    before = await faulty.stats()
    await faulty.configure(lose_answers={"SubmitJob": 1.0})
    hub = AwsHub(aws_settings(faulty, tmp_path).aws)
    try:
        with pytest.raises(AmbiguousCallError, match="may have taken effect") as caught:
            await hub.call(
                "batch", "SubmitJob", jobName="no-hook", jobQueue="q", jobDefinition="jd"
            )
    finally:
        await hub.aclose()
    stats = await faulty.stats()
    assert caught.value.attempts == 1
    assert hub.calls["SubmitJob"] == 1
    assert stats["jobs"] - before["jobs"] == 1


async def test_a_definitive_client_error_fails_at_once(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    hub = AwsHub(aws_settings(faulty, tmp_path).aws)
    try:
        with pytest.raises(AwsCallError, match="after 1 attempt") as caught:
            await hub.call(
                "batch",
                "SubmitJob",
                jobName="bad",
                jobQueue="q",
                jobDefinition="no-such-definition",
                reconcile=_never_called,
            )
    finally:
        await hub.aclose()
    assert hub.calls["SubmitJob"] == 1
    assert caught.value.code == "ClientException"


async def _never_called() -> dict[str, Any] | None:
    raise AssertionError("a definitive error needs no reconciliation")


async def test_reads_are_retried_through_lost_answers(
    faulty: BatchEmulator, tmp_path: Path
) -> None:
    """DescribeJobs is safe to repeat: a lost answer is simply asked again."""
    await faulty.configure(seed=1, lose_answers={"DescribeJobs": 0.5})
    hub = AwsHub(aws_settings(faulty, tmp_path).aws)
    try:
        for _ in range(10):
            await hub.call("batch", "DescribeJobs", jobs=["x"])
    finally:
        await hub.aclose()
    assert hub.calls["DescribeJobs"] > 10


async def test_idempotency_tokens_are_fixed_once_per_call() -> None:
    """An action with a client token is safe to repeat: every try sends the same token."""
    from botocore.session import get_session

    from airloop.providers.aws.hub import pin_idempotency_tokens

    model = get_session().get_service_model("batch")
    params: dict[str, Any] = {"jobName": "x"}
    assert pin_idempotency_tokens(model, "SubmitServiceJob", params) is True
    token = params["clientToken"]
    assert pin_idempotency_tokens(model, "SubmitServiceJob", params) is True
    assert params["clientToken"] == token
    assert pin_idempotency_tokens(model, "SubmitJob", {}) is False
