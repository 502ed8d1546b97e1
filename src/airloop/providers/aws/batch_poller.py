"""One batched DescribeJobs poller per (region, endpoint).

Every task waiting for a Batch job registers its job id here. Each round asks
DescribeJobs about every registered id, 100 ids per call (the AWS limit), a few calls
in flight, and wakes exactly the waiters whose job reached SUCCEEDED or FAILED.
Watching N jobs costs about N/100 calls per interval, not N (Airflow's BatchJobTrigger
makes one call per job per interval, each from its own client).

A job id that DescribeJobs stops returning (deleted, wrong region) fails its waiters
after ``batch_missing_rounds`` rounds instead of being waited on forever. The loop runs
only while someone waits, as a task the poller owns.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from airloop.exceptions import AirloopError

if TYPE_CHECKING:
    from airloop.providers.aws.hub import AwsHub

log = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
DESCRIBE_LIMIT = 100


class BatchJobVanished(AirloopError):
    """DescribeJobs no longer knows the job."""


class BatchStatusPoller:
    def __init__(self, hub: AwsHub, *, region: str | None, endpoint_url: str | None) -> None:
        self._hub = hub
        self._region = region
        self._endpoint_url = endpoint_url
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._missing: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.describe_calls = 0
        #: (job ids asked, DescribeJobs calls) for each round: the cost of watching.
        self.round_sizes: list[tuple[int, int]] = []
        #: The last status seen of each watched job (for progress displays).
        self.last_status: dict[str, str] = {}

    @property
    def watching(self) -> int:
        return len(self._waiters)

    async def wait(self, job_id: str) -> dict[str, Any]:
        """The job's description once it is SUCCEEDED or FAILED."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        if self._task is None or self._task.done():
            # A fresh context: the loop serves every waiter, so its records (and the
            # retries of its DescribeJobs calls) must not land in the log of whichever
            # task happened to start it.
            self._task = asyncio.create_task(
                self._run(), name="airloop-batch-poller", context=contextvars.Context()
            )
        try:
            return await future
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[job_id]
                    self._missing.pop(job_id, None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._settle_all(RuntimeError("the engine is closing"))

    def _settle_all(self, error: BaseException) -> None:
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    async def _run(self) -> None:
        settings = self._hub.settings
        try:
            while self._waiters:
                interval = settings.batch_poll_interval
                await asyncio.sleep(interval * (1 + random.uniform(0, settings.batch_poll_jitter)))
                if self._waiters:
                    await self._round()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the Batch status poller failed")
            self._settle_all(exc)

    async def _round(self) -> None:
        settings = self._hub.settings
        ids = list(self._waiters)
        chunks = [ids[i : i + DESCRIBE_LIMIT] for i in range(0, len(ids), DESCRIBE_LIMIT)]
        slots = asyncio.Semaphore(settings.batch_describe_concurrency)
        self.rounds += 1
        self.describe_calls += len(chunks)
        self.round_sizes.append((len(ids), len(chunks)))

        async def describe(chunk: list[str]) -> dict[str, Any]:
            async with slots:
                return await self._hub.call(
                    "batch",
                    "DescribeJobs",
                    region=self._region,
                    endpoint_url=self._endpoint_url,
                    jobs=chunk,
                )

        started = time.monotonic()
        results = await asyncio.gather(*(describe(c) for c in chunks), return_exceptions=True)
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning(
                    "DescribeJobs for %d jobs failed (%s); asking again next round",
                    len(chunk),
                    result,
                )
                continue
            self._apply(chunk, {job["jobId"]: job for job in result.get("jobs", [])})
        log.debug(
            "batch poll round %d: %d jobs, %d calls, %.2fs",
            self.rounds,
            len(ids),
            len(chunks),
            time.monotonic() - started,
        )

    def _apply(self, asked: list[str], found: dict[str, dict[str, Any]]) -> None:
        limit = self._hub.settings.batch_missing_rounds
        for job_id in asked:
            job = found.get(job_id)
            if job is None:
                self._missing[job_id] = self._missing.get(job_id, 0) + 1
                if self._missing[job_id] >= limit:
                    self._resolve(
                        job_id,
                        error=BatchJobVanished(
                            f"AWS Batch job {job_id} was not returned by DescribeJobs in "
                            f"{limit} rounds: deleted, or in another region or account"
                        ),
                    )
                continue
            self._missing.pop(job_id, None)
            self.last_status[job_id] = job.get("status", "?")
            if job.get("status") in TERMINAL:
                self._resolve(job_id, job=job)

    def _resolve(
        self, job_id: str, *, job: dict[str, Any] | None = None, error: BaseException | None = None
    ) -> None:
        for future in self._waiters.pop(job_id, []):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                assert job is not None
                future.set_result(job)
        self._missing.pop(job_id, None)
