"""BatchSubmitJobOperator and BatchJobSensor against the emulator, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from airloop import DAG, DagRunState
from airloop.engine.engine import Engine
from airloop.providers.aws.batch import BatchJobSensor, BatchSubmitJobOperator
from airloop.providers.aws.emulator import BatchEmulator
from airloop.providers.aws.hub import AwsHub

from .conftest import aws_settings, cli_env, env, ti_rows

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROOT = Path(__file__).resolve().parents[2]


async def test_jobs_succeed_and_return_their_summary(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    await emulator.configure(default_seconds=0.5, phase_seconds=[0.05, 0.05, 0.05, 0.05])
    with DAG("ok") as dag:
        BatchSubmitJobOperator(
            task_id="one", job_queue="q", job_definition="jd", container_overrides=env(0.3)
        )
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        (xcom,) = await engine.store.xcom_values(result.run_pk)
        (ti,) = await engine.store.task_instances(result.run_pk)
    summary = json.loads(xcom.value)
    assert summary["status"] == "SUCCEEDED"
    assert summary["exit_code"] == 0
    assert summary["log_stream_name"].endswith(summary["job_id"])
    assert summary["job_name"] == f"ok-one-t1-{summary['job_name'].rsplit('-', 1)[1]}"
    # The job id was saved as the checkpoint, for this try.
    assert ti.checkpoint["try_number"] == 1
    assert ti.checkpoint["value"]["job_id"] == summary["job_id"]


async def test_a_failed_job_fails_the_task_with_batchs_reason(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    with DAG("bad") as dag:
        BatchSubmitJobOperator(
            task_id="boom",
            job_queue="q",
            job_definition="jd",
            container_overrides=env(0.1, exit_code=3),
        )
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    ((_, error),) = result.failed
    assert "FAILED: Essential container in task exited (exit code 3)" in error


async def test_monitoring_is_batched_per_100_jobs(emulator: BatchEmulator, tmp_path: Path) -> None:
    n = 250
    with DAG("many") as dag:
        BatchSubmitJobOperator.partial(task_id="job", job_queue="q", job_definition="jd").expand(
            container_overrides=[env(0.5 + (i % 5) / 10) for i in range(n)]
        )
    async with Engine(aws_settings(emulator, tmp_path, batch_poll_interval=0.5)) as engine:
        result = await engine.run(dag)
        hub = await AwsHub.current_for(engine)
        poller = hub.batch_poller()
    assert result.counts == {"success": n}
    assert hub.calls["SubmitJob"] == n
    # Each round asks about every job still running, 100 ids per call, never more.
    for asked, calls in poller.round_sizes:
        assert calls == -(-asked // 100)
    assert hub.calls["DescribeJobs"] == poller.describe_calls
    assert poller.describe_calls <= 3 * len(poller.round_sizes)


async def test_cancelling_the_task_terminates_the_job(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    with DAG("cancel") as dag:
        BatchSubmitJobOperator(
            task_id="long",
            job_queue="q",
            job_definition="jd",
            container_overrides=env(60),
            execution_timeout=1.0,
        )
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        result = await engine.run(dag)
        (ti,) = await engine.store.task_instances(result.run_pk)
        hub = await AwsHub.current_for(engine)
        job_id = ti.checkpoint["value"]["job_id"]
        described = await hub.call("batch", "DescribeJobs", jobs=[job_id])
    assert "execution_timeout" in ti.error
    (job,) = described["jobs"]
    assert job["status"] == "FAILED"
    assert "cancelled or timed out" in job["statusReason"]


async def test_a_job_submitted_before_a_crash_is_reattached_not_resubmitted(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    """A crash between SubmitJob and the checkpoint: the name finds the job again."""
    from airloop.providers.aws.batch import batch_job_name
    from airloop.providers.aws.session import client_context

    name = batch_job_name("heal", "r1", "j", -1, 1)
    async with client_context("batch", **emulator.client_settings()) as batch:
        # What the first attempt submitted before it "crashed" (no checkpoint saved).
        before = await batch.submit_job(
            jobName=name, jobQueue="q", jobDefinition="jd", containerOverrides=env(0.2)
        )
    with DAG("heal") as dag:
        BatchSubmitJobOperator(
            task_id="j",
            job_queue="q",
            job_definition="jd",
            container_overrides=env(0.2),
            # What a resumed try does by itself (context.checkpoint.resumed).
            lookup_before_submit=True,
        )
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        result = await engine.run(dag, run_id="r1")
        hub = await AwsHub.current_for(engine)
        (xcom,) = await engine.store.xcom_values(result.run_pk)
    assert result.state is DagRunState.SUCCESS
    assert hub.calls["SubmitJob"] == 0
    assert json.loads(xcom.value)["job_id"] == before["jobId"]
    stats = await emulator.stats()
    assert name not in stats["submitted_more_than_once"]


async def test_the_sensor_waits_for_an_existing_job(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    from airloop.providers.aws.session import client_context

    async with client_context("batch", **emulator.client_settings()) as batch:
        submitted = await batch.submit_job(
            jobName="external", jobQueue="q", jobDefinition="jd", containerOverrides=env(0.3)
        )
    with DAG("sense") as dag:
        BatchJobSensor(task_id="wait", job_id=submitted["jobId"], timeout=30)
        BatchJobSensor(task_id="missing", job_id="no-such-job", timeout=30, retries=0)
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        result = await engine.run(dag)
        rows = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    assert rows["wait"].state == "success"
    assert rows["missing"].state == "failed"
    assert "was not returned by DescribeJobs in 3 rounds" in rows["missing"].error


async def test_throttled_submits_and_polls_all_succeed_exactly_once(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    n = 300
    await emulator.configure(throttle={"SubmitJob": 50, "DescribeJobs": 20})
    try:
        with DAG("throttled") as dag:
            BatchSubmitJobOperator.partial(
                task_id="job", job_queue="q", job_definition="jd"
            ).expand(container_overrides=[env(0.2)] * n)
        async with Engine(aws_settings(emulator, tmp_path)) as engine:
            result = await engine.run(dag)
            hub = await AwsHub.current_for(engine)
        stats = await emulator.stats()
    finally:
        await emulator.configure(throttle={})
    assert result.counts == {"success": n}
    assert stats["throttled"].get("SubmitJob", 0) > 0, "the test did not hit the throttle"
    assert stats["submitted_more_than_once"] == []
    assert hub.limiter("batch", "SubmitJob").throttles > 0


async def test_clients_are_shared_by_every_task(emulator: BatchEmulator, tmp_path: Path) -> None:
    with DAG("shared") as dag:
        BatchSubmitJobOperator.partial(task_id="job", job_queue="q", job_definition="jd").expand(
            container_overrides=[env(0.1)] * 20
        )
    async with Engine(aws_settings(emulator, tmp_path)) as engine:
        await engine.run(dag)
        hub = await AwsHub.current_for(engine)
        assert len(hub._clients) == 1  # one batch client for 20 tasks
    await asyncio.sleep(0)


async def test_the_batch_example_runs_through_the_cli(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    import os
    import sys

    root = ROOT
    env_vars = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path),
        "AIRLOOP_AWS__ENDPOINT_URL": emulator.endpoint_url,
        "AIRLOOP_AWS__REGION": "us-east-1",
        "AIRLOOP_AWS__ACCESS_KEY_ID": "testing",
        "AIRLOOP_AWS__SECRET_ACCESS_KEY": "testing",
        "AIRLOOP_AWS__BATCH_POLL_INTERVAL": "0.5",
    }
    # The example's queue and job definition, as `airloop dev aws-emulator` creates them.
    await emulator.setup_batch(queue="airloop", job_definition="airloop-job")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airloop",
        "run",
        str(root / "examples" / "batch_fanout.py"),
        "--param",
        "jobs=20",
        "--param",
        "seconds=1",
        env=env_vars,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    assert "success 22" in output.decode()


CRASH_DAG = """
from airloop import DAG
from airloop.providers.aws.batch import BatchSubmitJobOperator

with DAG("crashy") as dag:
    BatchSubmitJobOperator.partial(task_id="job", job_queue="q", job_definition="jd").expand(
        container_overrides=[
            {"environment": [{"name": "AIRLOOP_EMULATOR_SECONDS", "value": "4"}]}
        ] * 40
    )
"""


async def test_sigkill_then_resume_submits_no_job_twice_and_loses_none(
    emulator: BatchEmulator, tmp_path: Path
) -> None:
    import signal
    import sys

    dag_file = tmp_path / "crashy.py"
    await asyncio.to_thread(dag_file.write_text, CRASH_DAG)
    env_vars = cli_env(emulator, tmp_path / "home")
    db = tmp_path / "home" / "airloop.db"
    before = await emulator.stats()

    def rows() -> list[tuple[str, int, str, int, str | None]]:
        return ti_rows(db)

    async def airloop(*args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airloop", "run", str(dag_file), "--run-id", "crash1", *args,
            env=env_vars, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

    first = await airloop()
    async with asyncio.timeout(60):  # until jobs are submitted and checkpointed
        # Watching another process's database: polling is the only way to see it.
        while sum(1 for r in await asyncio.to_thread(rows) if r[4]) < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    first.kill()  # SIGKILL: no cleanup, no final write
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    killed = await asyncio.to_thread(rows)
    # Checkpoints are written at once; states with the scheduler's next tick.
    assert any(r[2] in ("running", "queued") for r in killed), "the crash should leave work"
    assert any(r[4] for r in killed)

    second = await airloop("--resume")
    output, _ = await asyncio.wait_for(second.communicate(), 120)
    assert second.returncode == 0, output.decode()
    after = await asyncio.to_thread(rows)
    assert len(after) == 40
    assert {r[2] for r in after} == {"success"}
    assert {r[3] for r in after} == {1}, "resumed under the same try, not retried"
    stats = await emulator.stats()
    assert stats["jobs"] - before["jobs"] == 40, "exactly one job per task instance"
    assert stats["submitted_more_than_once"] == before["submitted_more_than_once"]
