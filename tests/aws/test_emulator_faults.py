"""The emulator's injected faults, seen by a plain client (one try, no airloop)."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.session import client_context

pytestmark = pytest.mark.asyncio(loop_scope="module")
ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.mark.parametrize(
    ("fault", "executed"),
    [("server_errors", False), ("lose_answers", True), ("drop_connections", True)],
)
async def test_a_fault_executes_the_call_or_not_as_configured(
    emulator: BatchEmulator, fault: str, executed: bool
) -> None:
    name = f"fault-{fault}"
    before = await emulator.stats()
    await emulator.configure(**{fault: {"SubmitJob": 1.0}})
    try:
        async with client_context("batch", config=ONE_TRY, **emulator.client_settings()) as b:
            expected = ConnectionClosedError if fault == "drop_connections" else ClientError
            with pytest.raises(expected):
                await b.submit_job(jobName=name, jobQueue="q", jobDefinition="jd")
            await emulator.configure(**{fault: {}})
            listed = await b.list_jobs(
                jobQueue="q", filters=[{"name": "JOB_NAME", "values": [name]}]
            )
    finally:
        await emulator.configure(**{fault: {}})
    stats = await emulator.stats()
    assert len(listed["jobSummaryList"]) == (1 if executed else 0)
    assert stats["jobs"] - before["jobs"] == (1 if executed else 0)
    assert (
        stats["faults"][fault]["SubmitJob"]
        == before["faults"].get(fault, {}).get("SubmitJob", 0) + 1
    )
