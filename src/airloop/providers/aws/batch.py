"""AWS Batch: submit a job and wait for it, or wait for an existing one.

``BatchSubmitJobOperator`` (Airflow users know it as ``BatchOperator``) names the job
deterministically (run, task, map index, try), and never submits one try twice:

- just before SubmitJob goes out it checkpoints ``{"job_name": ...}`` (the try *may*
  have submitted from then on), and right after, ``{"job_id", "job_name"}``;
- a resumed try with a job id re-attaches to it; one with only the name looks the
  name up (ListJobs, JOB_NAME filter) and re-attaches to what it finds -- a try
  without either never reached SubmitJob and submits without looking;
- SubmitJob is not safe to repeat (Batch has no client token for it): when its
  answer is lost (5xx, timeout, dropped connection) the same lookup decides between
  re-attaching and submitting again (``AwsHub.call``'s reconcile hook).

It then waits through the shared batched poller.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Any

from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.authoring.sensor import BaseSensor
from airloop.core.outcomes import is_handover
from airloop.exceptions import AirloopError, SensorTimeout, SkipTask
from airloop.providers.aws.hub import AwsHub

_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
log = logging.getLogger("airloop.task.aws")

#: Seconds to wait before each name lookup that decides whether a SubmitJob whose
#: answer was lost created its job. ListJobs reads an index that can trail SubmitJob
#: by a moment in AWS, so one empty answer right after the submit is weak evidence;
#: three lookups over ~4 s make "not created" (and a second submit) a safe call.
NAME_LOOKUP_DELAYS: tuple[float, ...] = (0.0, 1.0, 3.0)


class BatchJobFailed(AirloopError):
    """The Batch job ended FAILED; the message carries Batch's statusReason."""


def batch_job_name(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Deterministic and unique per try: ``<dag>-<task>[-<map>]-t<try>-<run hash>``.

    Batch allows 128 letters, digits, hyphens and underscores.
    """
    run_hash = hashlib.sha1(f"{dag_id}/{run_id}".encode()).hexdigest()[:12]
    index = f"-{map_index}" if map_index >= 0 else ""
    base = _NAME_OK.sub("_", f"{dag_id}-{task_id}")
    suffix = f"{index}-t{try_number}-{run_hash}"
    return base[: 128 - len(suffix)] + suffix


def job_name(context: Context) -> str:
    ti = context.ti
    return batch_job_name(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)


def summarize(job: dict[str, Any]) -> dict[str, Any]:
    container = job.get("container") or {}
    return {
        "job_id": job["jobId"],
        "job_name": job.get("jobName"),
        "status": job.get("status"),
        "status_reason": job.get("statusReason"),
        "exit_code": container.get("exitCode"),
        "log_stream_name": container.get("logStreamName"),
        "started_at": job.get("startedAt"),
        "stopped_at": job.get("stoppedAt"),
    }


class BatchSubmitJobOperator(BaseOperator):
    """Submit an AWS Batch job and (by default) wait for it; returns its summary as XCom."""

    resumable = True  # re-attaches through its checkpoint or the job's name

    def __init__(
        self,
        *,
        job_queue: str,
        job_definition: str,
        job_name: str | None = None,
        container_overrides: dict[str, Any] | None = None,
        parameters: dict[str, str] | None = None,
        array_properties: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        wait: bool = True,
        terminate_on_cancel: bool = True,
        lookup_before_submit: bool | None = None,
        name_lookup_delays: Sequence[float] = NAME_LOOKUP_DELAYS,
        region: str | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_queue = job_queue
        self.job_definition = job_definition
        self.job_name = job_name
        self.container_overrides = container_overrides
        self.parameters = parameters
        self.array_properties = array_properties
        self.tags = tags
        self.wait = wait
        self.terminate_on_cancel = terminate_on_cancel
        #: Look the name up (ListJobs) before submitting. None: only when this try's
        #: checkpoint says it was about to submit (a crash between SubmitJob and the
        #: job id's checkpoint) -- so a normal run, and a resumed try that never got
        #: that far, makes no extra call per job.
        self.lookup_before_submit = lookup_before_submit
        delays = tuple(float(d) for d in name_lookup_delays)
        if not delays or any(d < 0 for d in delays):
            raise ValueError(
                f"name_lookup_delays must be one or more seconds >= 0, got {name_lookup_delays!r}"
            )
        self.name_lookup_delays = delays
        self.region = region
        self.endpoint_url = endpoint_url

    def _where(self) -> dict[str, Any]:
        return {"region": self.region, "endpoint_url": self.endpoint_url}

    async def _existing(self, hub: AwsHub, name: str) -> str | None:
        """The job already submitted under this name, if any.

        Asked ``len(name_lookup_delays)`` times, after each delay, until found (see
        NAME_LOOKUP_DELAYS). With a filter, ListJobs returns jobs in every status;
        the filter matches without case, so the name is compared exactly here.
        """
        for delay in self.name_lookup_delays:
            if delay:
                await asyncio.sleep(delay)
            response = await hub.call(
                "batch",
                "ListJobs",
                jobQueue=self.job_queue,
                filters=[{"name": "JOB_NAME", "values": [name]}],
                **self._where(),
            )
            jobs = sorted(
                (j for j in response.get("jobSummaryList", []) if j.get("jobName") == name),
                key=lambda j: j.get("createdAt", 0),
            )
            if len(jobs) > 1:
                log.warning(
                    "%d Batch jobs are named %s: re-attaching to the oldest, %s",
                    len(jobs),
                    name,
                    jobs[0]["jobId"],
                )
            if jobs:
                return str(jobs[0]["jobId"])
        return None

    async def _submit(self, hub: AwsHub, name: str, context: Context) -> str:
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": self.job_queue,
            "jobDefinition": self.job_definition,
        }
        if self.container_overrides:
            request["containerOverrides"] = self.container_overrides
        if self.parameters:
            request["parameters"] = self.parameters
        if self.array_properties:
            request["arrayProperties"] = self.array_properties
        if self.tags:
            request["tags"] = self.tags

        async def reconcile() -> dict[str, Any] | None:
            found = await self._existing(hub, name)
            return {"jobId": found, "jobName": name} if found is not None else None

        async def about_to_submit() -> None:
            # From here on this try may have a job without a checkpointed id.
            await context.checkpoint.save({"job_name": name})

        response = await hub.call(
            "batch",
            "SubmitJob",
            reconcile=reconcile,
            before_send=about_to_submit,
            **request,
            **self._where(),
        )
        return str(response["jobId"])

    async def execute(self, context: Context) -> dict[str, Any]:
        hub = await AwsHub.current()
        name = self.job_name or job_name(context)
        saved = context.checkpoint.value
        if saved and saved.get("job_id"):
            job_id = str(saved["job_id"])
            context.log.info("re-attaching to Batch job %s (%s) from the checkpoint", job_id, name)
        else:
            lookup = self.lookup_before_submit
            if lookup is None:
                # Only a try that got as far as SubmitJob can have a job to find.
                lookup = bool(saved and saved.get("job_name") == name)
            found = await self._existing(hub, name) if lookup else None
            if found is not None:
                job_id = found
                context.log.info("Batch job %s already exists as %s: re-attaching", name, job_id)
            else:
                job_id = await self._submit(hub, name, context)
                context.log.info("submitted Batch job %s as %s", name, job_id)
            await context.checkpoint.save({"job_id": job_id, "job_name": name})
        if not self.wait:
            return {"job_id": job_id, "job_name": name, "status": "SUBMITTED"}
        try:
            job = await hub.batch_poller(**self._where()).wait(job_id)
        except asyncio.CancelledError as exc:
            # A handover (the DAG's lease moved) leaves the job to its new owner.
            if self.terminate_on_cancel and not is_handover(exc):
                await asyncio.shield(self._terminate(hub, job_id, context))
            raise
        summary = summarize(job)
        if job.get("status") == "FAILED":
            raise BatchJobFailed(
                f"Batch job {name} ({job_id}) FAILED: {job.get('statusReason') or 'no reason given'}"
                f" (exit code {summary['exit_code']})"
            )
        return summary  # the runner logs the success; the summary holds the exit code

    async def _terminate(self, hub: AwsHub, job_id: str, context: Context) -> None:
        try:
            await hub.call(
                "batch",
                "TerminateJob",
                jobId=job_id,
                reason="airloop: the task was cancelled or timed out",
                **self._where(),
            )
            context.log.info("terminated Batch job %s", job_id)
        except Exception as exc:  # noqa: BLE001 - the cancellation goes on; say why it failed
            context.log.error("could not terminate Batch job %s: %s", job_id, exc)


class BatchJobSensor(BaseSensor):
    """Wait for an existing Batch job (by id) through the shared poller.

    ``timeout`` and ``soft_fail`` behave as for any sensor; a FAILED job fails the task
    unless ``fail_on_job_failure=False`` (then its summary is returned either way).
    """

    resumable = True  # waiting on a job id again is always safe

    def __init__(
        self,
        *,
        job_id: str,
        fail_on_job_failure: bool = True,
        region: str | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.fail_on_job_failure = fail_on_job_failure
        self.region = region
        self.endpoint_url = endpoint_url

    def poke(self, context: Context) -> bool:  # pragma: no cover - execute() is overridden
        raise NotImplementedError("BatchJobSensor waits through the batched poller")

    async def execute(self, context: Context) -> dict[str, Any]:
        hub = await AwsHub.current()
        poller = hub.batch_poller(region=self.region, endpoint_url=self.endpoint_url)
        try:
            async with asyncio.timeout(self.timeout):
                job = await poller.wait(self.job_id)
        except TimeoutError:
            message = f"Batch job {self.job_id} did not finish within {self.timeout:g}s"
            if self.soft_fail:
                raise SkipTask(message) from None
            raise SensorTimeout(message) from None
        summary = summarize(job)
        if job.get("status") == "FAILED" and self.fail_on_job_failure:
            raise BatchJobFailed(
                f"Batch job {self.job_id} FAILED: {job.get('statusReason') or 'no reason given'}"
            )
        return summary
