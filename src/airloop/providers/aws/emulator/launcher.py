"""Start, configure, query and stop the emulator server (a separate process)."""

from __future__ import annotations

import asyncio
import json
import sys
from types import TracebackType
from typing import Any

import aiohttp

from airloop.providers.aws.session import client_context

#: Credentials the emulator accepts (any work; these make the intent obvious).
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


class BatchEmulator:
    """``async with BatchEmulator() as emu:`` -> ``emu.endpoint_url`` on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "airloop.providers.aws.emulator.server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await self._process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("the AWS emulator exited before it was ready")
                if line.startswith("READY "):
                    self.port = int(line.split()[1])
                    break
        # Batch without Docker: moto's batch_simple backend; this server adds the clock.
        await self._post("/moto-api/config", {"batch": {"use_docker": False}})

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None

    async def __aenter__(self) -> BatchEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _post(self, path: str, payload: Any) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.endpoint_url + path, data=json.dumps(payload)) as response,
        ):
            response.raise_for_status()
            return await response.json(content_type=None)

    async def configure(self, **settings: Any) -> None:
        """default_seconds, phase_seconds, failure_rate, throttle={"SubmitJob": 50}, seed."""
        await self._post("/airloop-emulator/config", settings)

    async def stats(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.endpoint_url + "/airloop-emulator/stats") as response,
        ):
            response.raise_for_status()
            result: dict[str, Any] = await response.json(content_type=None)
            return result

    def client_settings(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "region_name": REGION, **EMULATOR_CREDENTIALS}

    async def setup_batch(
        self, queue: str = "airloop", job_definition: str = "airloop-job"
    ) -> tuple[str, str]:
        """A compute environment, a job queue and a job definition; returns their ARNs."""
        async with client_context("iam", **self.client_settings()) as iam:
            role = await iam.create_role(
                RoleName=f"{queue}-batch-service",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            )
        async with client_context("batch", **self.client_settings()) as batch:
            env = await batch.create_compute_environment(
                computeEnvironmentName=f"{queue}-env",
                type="UNMANAGED",
                state="ENABLED",
                serviceRole=role["Role"]["Arn"],
            )
            q = await batch.create_job_queue(
                jobQueueName=queue,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[
                    {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
                ],
            )
            jd = await batch.register_job_definition(
                jobDefinitionName=job_definition,
                type="container",
                containerProperties={
                    "image": "busybox",
                    "vcpus": 1,
                    "memory": 128,
                    "command": ["sleep", "Ref::seconds"],
                },
            )
        return q["jobQueueArn"], jd["jobDefinitionArn"]
