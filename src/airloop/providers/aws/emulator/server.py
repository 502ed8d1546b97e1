"""The AWS Batch emulator server: moto's server with Batch jobs that take time.

Run as ``python -m airloop.providers.aws.emulator.server --port 0`` (it prints
``READY <port>`` when listening) or through ``airloop dev aws-emulator``.

moto (pinned 5.2.5) serves every AWS API on the wire. With Docker off, moto's
``batch_simple`` backend finishes every job inside SubmitJob, so this WSGI layer
owns the Batch *job* API itself:

- SubmitJob goes to moto (queue and job definition are validated, an id is issued),
  then the job is recorded here with its timeline: SUBMITTED, PENDING, RUNNABLE,
  STARTING, RUNNING for its duration, then SUCCEEDED or FAILED. A job's state is a
  function of the clock, so no thread or timer per job exists at all.
- DescribeJobs (at most 100 ids, as in AWS; moto accepts any number), ListJobs (with
  the JOB_NAME filter, maxResults and nextToken), TerminateJob and CancelJob are
  answered from that record, with exitCode, statusReason and logStreamName.
- A job's duration and exit code come from its container overrides' environment
  (``AIRLOOP_EMULATOR_SECONDS``, ``AIRLOOP_EMULATOR_EXIT_CODE``), else from defaults.
- ``POST /airloop-emulator/config`` sets defaults, phase durations, failure rate,
  throttling (requests per second per action; past it: HTTP 429
  TooManyRequestsException) and faults, each a probability per action:
  ``server_errors`` (answer 500 *without* executing), ``lose_answers`` (execute, then
  answer 500: the caller cannot tell whether it happened) and ``drop_connections``
  (execute, then close the connection without an answer). ``GET
  /airloop-emulator/stats`` counts calls, throttled calls, injected faults, jobs
  created and submissions per job name.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PHASES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
DESCRIBE_LIMIT = 100
ACTIONS = {
    "/v1/submitjob": "SubmitJob",
    "/v1/describejobs": "DescribeJobs",
    "/v1/listjobs": "ListJobs",
    "/v1/terminatejob": "TerminateJob",
    "/v1/canceljob": "CancelJob",
}


@dataclass
class EmulatorConfig:
    default_seconds: float = 30.0
    #: Seconds spent in SUBMITTED, PENDING, RUNNABLE, STARTING before RUNNING.
    phase_seconds: tuple[float, float, float, float] = (0.1, 0.1, 0.3, 0.5)
    #: Fraction of jobs (without an explicit exit code) that fail.
    failure_rate: float = 0.0
    #: Requests per second allowed per action name, e.g. {"SubmitJob": 50}.
    throttle: dict[str, float] = field(default_factory=dict)
    #: Per action, the probability of answering 500 without executing the call.
    server_errors: dict[str, float] = field(default_factory=dict)
    #: Per action, the probability of executing the call, then answering 500.
    lose_answers: dict[str, float] = field(default_factory=dict)
    #: Per action, the probability of executing the call, then dropping the connection.
    drop_connections: dict[str, float] = field(default_factory=dict)
    seed: int | None = None


@dataclass
class Job:
    job_id: str
    arn: str
    name: str
    queue: str
    definition: str
    submitted: float
    seconds: float
    exit_code: int
    phases: tuple[float, float, float, float]
    parameters: dict[str, str]
    environment: list[dict[str, str]]
    tags: dict[str, str]
    terminated: float | None = None
    reason: str | None = None

    def timeline(self) -> tuple[float, float]:
        """(startedAt, stoppedAt) in epoch seconds, as planned."""
        started = self.submitted + sum(self.phases)
        return started, started + self.seconds

    def view(self, now: float) -> dict[str, Any]:
        started, stopped = self.timeline()
        status: str
        out: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "jobId": self.job_id,
            "jobQueue": self.queue,
            "jobDefinition": self.definition,
            "createdAt": int(self.submitted * 1000),
            "parameters": self.parameters,
            "tags": self.tags,
            "dependsOn": [],
        }
        container: dict[str, Any] = {"environment": self.environment}
        if self.terminated is not None and self.terminated < stopped:
            status = "FAILED"
            out["statusReason"] = self.reason or "Terminated by user"
            if self.terminated >= started:
                out["startedAt"] = int(started * 1000)
                container["exitCode"] = 143
                container["logStreamName"] = self._stream()
            out["stoppedAt"] = int(self.terminated * 1000)
        elif now >= stopped:
            status = "SUCCEEDED" if self.exit_code == 0 else "FAILED"
            out["startedAt"] = int(started * 1000)
            out["stoppedAt"] = int(stopped * 1000)
            container["exitCode"] = self.exit_code
            container["logStreamName"] = self._stream()
            out["statusReason"] = (
                "Essential container in task exited"
                if self.exit_code
                else "Job completed successfully"
            )
        elif now >= started:
            status = "RUNNING"
            out["startedAt"] = int(started * 1000)
            container["logStreamName"] = self._stream()
        else:
            status, t = PHASES[0], self.submitted
            for phase, seconds in zip(PHASES, self.phases, strict=True):
                status = phase
                t += seconds
                if now < t:
                    break
        out["status"] = status
        out["container"] = container
        return out

    def _stream(self) -> str:
        return f"{self.definition.split('/')[-1].split(':')[0]}/default/{self.job_id}"


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class BatchJobsLayer:
    """WSGI middleware in front of moto: owns the Batch job API (see module docstring)."""

    def __init__(self, moto_app: WSGIApp) -> None:
        self.moto_app = moto_app
        self.config = EmulatorConfig()
        self.jobs: dict[str, Job] = {}
        self.by_name: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.submissions: Counter[str] = Counter()
        #: Faults injected, by kind ("server_errors", ...) and action.
        self.faults: dict[str, Counter[str]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()

    # -- WSGI -----------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/airloop-emulator/"):
            return self._control(path, method, environ, start_response)
        action = ACTIONS.get(path.lower()) if method == "POST" else None
        if action is None:
            return self.moto_app(environ, start_response)
        with self._lock:
            self.calls[action] += 1
            bucket = self._buckets.get(action)
            allowed = bucket.take() if bucket is not None else True
            if not allowed:
                self.throttled[action] += 1
            fault = self._fault(action) if allowed else None
        if not allowed:
            return _error(start_response, 429, "TooManyRequestsException", "Too Many Requests")
        if fault == "server_errors":
            return _error(start_response, 500, "ServerException", "injected: not executed")
        if fault is None:
            return self._execute(action, environ, start_response)
        # Execute the call for real, then lose its answer.
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            return lambda data: None

        b"".join(self._execute(action, environ, capture))
        if fault == "lose_answers":
            return _error(start_response, 500, "ServerException", "injected: answer lost")
        # drop_connections: close the socket under the client, send nothing.
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionResetError("injected: connection dropped after executing")

    def _fault(self, action: str) -> str | None:
        """The fault to inject into this call, if any (called under the lock)."""
        for kind in ("server_errors", "lose_answers", "drop_connections"):
            probability = getattr(self.config, kind).get(action, 0.0)
            if probability and self._rng.random() < probability:
                self.faults.setdefault(kind, Counter())[action] += 1
                return kind
        return None

    def _execute(
        self, action: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        body = _read_body(environ)
        if action == "SubmitJob":
            return self._submit(environ, body, start_response)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _error(start_response, 400, "ClientException", "malformed JSON body")
        handler = {
            "DescribeJobs": self._describe,
            "ListJobs": self._list,
            "TerminateJob": self._terminate,
            "CancelJob": self._terminate,
        }[action]
        return handler(request, start_response)

    # -- Batch job API --------------------------------------------------------------

    def _submit(
        self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        environ = dict(environ)
        environ["wsgi.input"] = _Body(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        chunks = b"".join(self.moto_app(environ, capture))
        if not captured["status"].startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [chunks]
        response = json.loads(chunks)
        request = json.loads(body)
        self._record(request, response)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(response).encode()]

    def _record(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        overrides = request.get("containerOverrides") or {}
        env = overrides.get("environment") or []
        env_map = {e.get("name"): e.get("value") for e in env}
        with self._lock:
            cfg = self.config
            seconds = float(env_map.get("AIRLOOP_EMULATOR_SECONDS", cfg.default_seconds))
            if "AIRLOOP_EMULATOR_EXIT_CODE" in env_map:
                exit_code = int(env_map["AIRLOOP_EMULATOR_EXIT_CODE"])
            else:
                exit_code = 1 if self._rng.random() < cfg.failure_rate else 0
            job = Job(
                job_id=response["jobId"],
                arn=response.get("jobArn", ""),
                name=response["jobName"],
                queue=request.get("jobQueue", ""),
                definition=request.get("jobDefinition", ""),
                submitted=time.time(),
                seconds=seconds,
                exit_code=exit_code,
                phases=cfg.phase_seconds,
                parameters=request.get("parameters") or {},
                environment=list(env),
                tags=request.get("tags") or {},
            )
            self.jobs[job.job_id] = job
            self.by_name.setdefault(job.name, []).append(job.job_id)
            self.submissions[job.name] += 1

    def _describe(
        self, request: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        ids = request.get("jobs") or []
        if len(ids) > DESCRIBE_LIMIT:
            return _error(
                start_response,
                400,
                "ClientException",
                f"jobs: the list can contain at most {DESCRIBE_LIMIT} job IDs, got {len(ids)}",
            )
        now = time.time()
        with self._lock:
            views = [self.jobs[i].view(now) for i in ids if i in self.jobs]
        return _json(start_response, {"jobs": views})

    def _list(self, request: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        now = time.time()
        names: set[str] | None = None
        for flt in request.get("filters") or []:
            if flt.get("name") == "JOB_NAME":
                names = set(flt.get("values") or [])
        with self._lock:
            if names is not None:
                candidates = [self.jobs[i] for n in names for i in self.by_name.get(n, [])]
            else:
                queue = request.get("jobQueue")
                candidates = [j for j in self.jobs.values() if not queue or j.queue == queue]
            views = [j.view(now) for j in candidates]
        status = request.get("jobStatus")
        if status and names is None:
            views = [v for v in views if v["status"] == status]
        start = int(request.get("nextToken") or 0)
        size = int(request.get("maxResults") or 100)
        page = views[start : start + size]
        summary = [
            {
                "jobArn": v["jobArn"],
                "jobId": v["jobId"],
                "jobName": v["jobName"],
                "createdAt": v["createdAt"],
                "status": v["status"],
                **({"statusReason": v["statusReason"]} if "statusReason" in v else {}),
            }
            for v in page
        ]
        out: dict[str, Any] = {"jobSummaryList": summary}
        if start + size < len(views):
            out["nextToken"] = str(start + size)
        return _json(start_response, out)

    def _terminate(
        self, request: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        job_id = request.get("jobId", "")
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(start_response, 400, "ClientException", f"job {job_id} not found")
            if job.terminated is None and time.time() < job.timeline()[1]:
                job.terminated = time.time()
                job.reason = request.get("reason") or "Terminated by user"
        return _json(start_response, {})

    # -- control --------------------------------------------------------------------

    def _control(
        self, path: str, method: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if path == "/airloop-emulator/config" and method == "POST":
            update = json.loads(_read_body(environ) or b"{}")
            with self._lock:
                for key, value in update.items():
                    if not hasattr(self.config, key):
                        return _error(start_response, 400, "ClientException", f"unknown key {key}")
                    setattr(self.config, key, tuple(value) if key == "phase_seconds" else value)
                self._buckets = {a: TokenBucket(r) for a, r in self.config.throttle.items()}
                if self.config.seed is not None:
                    self._rng.seed(self.config.seed)
            return _json(start_response, {"ok": True})
        if path == "/airloop-emulator/stats":
            with self._lock:
                twice = sorted(n for n, c in self.submissions.items() if c > 1)
                return _json(
                    start_response,
                    {
                        "calls": dict(self.calls),
                        "throttled": dict(self.throttled),
                        "faults": {kind: dict(c) for kind, c in self.faults.items()},
                        "jobs": len(self.jobs),
                        "submitted_more_than_once": twice,
                    },
                )
        if path == "/airloop-emulator/health":
            return _json(start_response, {"ok": True})
        return _error(start_response, 404, "NotFound", path)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data) - self._pos
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _json(start_response: Callable[..., Any], payload: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


def _error(
    start_response: Callable[..., Any], code: int, kind: str, message: str
) -> Iterable[bytes]:
    reasons = {
        400: "Bad Request",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }
    start_response(
        f"{code} {reasons.get(code, 'Error')}",
        [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", kind),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [json.dumps({"__type": kind, "message": message}).encode()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="airloop's local AWS Batch emulator (moto)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = BatchJobsLayer(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True)
    port = server.server_address[1]

    def stop(signum: int, frame: Any) -> None:
        # serve_forever runs on this (the main) thread: leave it by an exception;
        # server.shutdown() from here would wait for the loop it interrupts.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"READY {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
