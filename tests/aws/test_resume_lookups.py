"""A resumed run looks up by name only the tries that may have submitted their job."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from airloop.providers.aws.batch import NAME_LOOKUP_DELAYS
from airloop.providers.aws.emulator import BatchEmulator

from .conftest import cli_env, ti_rows

pytestmark = pytest.mark.asyncio(loop_scope="module")

N = 40
SLOW_DAG = f"""
from airloop import DAG
from airloop.providers.aws.batch import BatchSubmitJobOperator

with DAG("slow_submits", max_active_tasks={N}) as dag:
    BatchSubmitJobOperator.partial(task_id="job", job_queue="q", job_definition="jd").expand(
        container_overrides=[
            {{"environment": [{{"name": "AIRLOOP_EMULATOR_SECONDS", "value": "2"}}]}}
        ] * {N}
    )
"""


def checkpoint_of(row: tuple[str, int, str, int, str | None]) -> dict[str, str]:
    """The checkpoint value of the row's current try ({} when it has none)."""
    stored = json.loads(row[4]) if row[4] else None
    if not stored or stored.get("try_number") != row[3]:
        return {}
    return dict(stored["value"])


async def test_resume_looks_up_only_tries_that_got_to_submit(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    dag_file = tmp_path / "slow_submits.py"
    await asyncio.to_thread(dag_file.write_text, SLOW_DAG)
    db = tmp_path / "home" / "airloop.db"
    start = await emulator.stats()

    async def airloop(*args: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airloop", "run", str(dag_file), "--run-id", "slow1", *args,
            env=cli_env(emulator, tmp_path / "home", **env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

    # Two submits a second: every task instance is handed to the executor at once,
    # but only a few get to send SubmitJob before the kill.
    first = await airloop(AIRLOOP_AWS__RATE_LIMITS='{"SubmitJob": 2}')
    async with asyncio.timeout(60):
        # Watching another process's database: polling is the only way to see it.
        while (  # noqa: ASYNC110
            sum(1 for r in await asyncio.to_thread(ti_rows, db) if checkpoint_of(r).get("job_id"))
            < 3
        ):
            await asyncio.sleep(0.05)
    first.kill()
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    killed = await asyncio.to_thread(ti_rows, db)
    points = [checkpoint_of(r) for r in killed]
    never_sent = sum(1 for p in points if not p)
    may_have_sent = sum(1 for p in points if p and not p.get("job_id"))
    assert len(killed) == N
    assert never_sent >= N // 2, "most tries should not have reached SubmitJob"

    before = await emulator.stats()
    second = await airloop("--resume")
    output, _ = await asyncio.wait_for(second.communicate(), 120)
    assert second.returncode == 0, output.decode()
    stats = await emulator.stats()
    lookups = stats["calls"].get("ListJobs", 0) - before["calls"].get("ListJobs", 0)
    # Only a try that checkpointed "about to submit" without a job id is looked up
    # (each at most once per spaced lookup); the others submit straight away.
    assert lookups <= may_have_sent * len(NAME_LOOKUP_DELAYS), (lookups, may_have_sent)
    after = await asyncio.to_thread(ti_rows, db)
    assert {r[2] for r in after} == {"success"}
    assert {r[3] for r in after} == {1}
    named = {checkpoint_of(r)["job_name"] for r in after}
    assert len(named) == N
    assert stats["jobs"] - start["jobs"] == N, "exactly one job per task instance"
    assert stats["submitted_more_than_once"] == start["submitted_more_than_once"]
    assert not named & set(stats["submitted_more_than_once"])
