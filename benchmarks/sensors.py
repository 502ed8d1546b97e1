"""N sensors of mixed kinds waiting at once in one scheduler process on one core.

    python benchmarks/sensors.py --sensors 10000 --poke-interval 60 --window 300 [--json]

The real scheduler service (``airloop scheduler``'s, in this process, pinned to core
0 with ``os.sched_setaffinity``) runs two DAGs from a DAG folder, triggered for the
same logical date: ``target`` (one task that waits for a gate file) and ``sensors``,
four mapped sensor tasks of N/4 instances each:

- ``DateTimeSensor`` until the release time (sleeps until then: no pokes);
- ``HttpSensor`` on ``/ready/<i>`` of a local aiohttp server (in its own process on
  core 1, so its CPU is not counted), which answers 404 until the release time;
- ``FileSensor`` on a file of its own, created at the release time;
- ``ExternalTaskSensor`` on ``target.work`` (woken by the store's run events).

Once every sensor is running, the process's CPU time is measured over the window
(``--window`` seconds of steady waiting), then everything is released and the runs
must succeed. Prints {"sensors", "poke_interval_s", "window_s", "startup_s",
"cpu_window_s", "cpu_s_per_sensor_hour", "core_fraction", "http_pokes",
"http_pokes_per_s", "peak_rss_mb", "release_to_done_s", "states", ...}:
``cpu_s_per_sensor_hour`` is cpu_window_s / (sensors * window_s / 3600), and
``core_fraction`` the share of one core the N sensors took while waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airloop.core.states import DagRunState
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.service import ServiceStore

KINDS = ("time", "http", "file", "external")

TARGET_DAG = """
import asyncio, pathlib
from airloop import DAG, task

with DAG("target", schedule=None) as dag:
    @task
    async def work() -> None:
        gate = pathlib.Path({gate!r})
        while not await asyncio.to_thread(gate.exists):
            await asyncio.sleep(1)
    work()
"""

SENSORS_DAG = """
from datetime import datetime
from airloop import DAG
from airloop.sensors import DateTimeSensor, ExternalTaskSensor, FileSensor, HttpSensor

EACH, POKE = {each}, {poke}
RELEASE = datetime.fromisoformat({release!r})
with DAG("sensors", schedule=None, max_active_tasks=4 * EACH) as dag:
    DateTimeSensor.partial(task_id="time", poke_interval=POKE, timeout=86400).expand(
        target_time=[RELEASE] * EACH
    )
    HttpSensor.partial(
        task_id="http", http_conn_id="bench_http", poke_interval=POKE, timeout=86400
    ).expand(endpoint=[f"ready/{{i}}" for i in range(EACH)])
    FileSensor.partial(task_id="file", poke_interval=POKE, timeout=86400).expand(
        filepath=[{files!r} + f"/f{{i}}" for i in range(EACH)]
    )
    ExternalTaskSensor.partial(
        task_id="external", external_dag_id="target", poke_interval=POKE, timeout=86400
    ).expand(external_task_id=["work"] * EACH)
"""


def pin(pid: int, core: int) -> None:
    """Pin a process to one core (0: this one), when there is more than one."""
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve_http(port_out: Any, release_at: float, counter: Any) -> None:
    """The local endpoint (a process of its own): 404 until release_at, then 200."""
    from aiohttp import web

    async def ready(request: web.Request) -> web.Response:
        with counter.get_lock():
            counter.value += 1
        if time.time() < release_at:
            return web.Response(status=404, text="not yet")
        return web.Response(text="ready")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ready/{i}", ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


async def count_running(store: Any, run_pk: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ti in await store.task_instances(run_pk):
        counts[ti.state.value] = counts.get(ti.state.value, 0) + 1
    return counts


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    each = args.sensors // len(KINDS)
    tmp = Path(tempfile.mkdtemp(prefix="airloop-sensors-"))
    files, dags = tmp / "files", tmp / "dags"
    files.mkdir()
    dags.mkdir()
    release_at = time.time() + args.max_startup + args.window
    release_iso = datetime.fromtimestamp(release_at, UTC).isoformat()

    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    receive, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=serve_http, args=(send, release_at, counter), daemon=True)
    server.start()
    pin(server.pid or 0, 1)
    port = receive.recv()
    os.environ["AIRLOOP_CONN_BENCH_HTTP"] = f"http://127.0.0.1:{port}"

    (dags / "target.py").write_text(textwrap.dedent(TARGET_DAG.format(gate=str(tmp / "gate"))))
    (dags / "sensors.py").write_text(
        SENSORS_DAG.format(
            each=each, poke=args.poke_interval, release=release_iso, files=str(files)
        )
    )
    settings = Settings(
        home=tmp / "home", dags_folder=dags, scheduler_poll_interval=2, parser_processes=1
    )
    service = SchedulerService(settings)
    stop = asyncio.Event()
    started = time.monotonic()
    serving = asyncio.create_task(service.serve(stop))
    try:
        await asyncio.wait_for(service.ready.wait(), 120)
        assert service.engine is not None
        store = service.engine.store
        svc = ServiceStore(store)
        logical = datetime.now(UTC)
        # Queued as `airloop dags trigger` queues; started once the DAG files are parsed.
        await svc.queue_run("target", "bench", {}, logical)
        await svc.queue_run("sensors", "bench", {}, logical)

        # Startup: until every sensor instance is running (checked every 2 s).
        run_pk = None
        while True:
            await asyncio.sleep(2)
            rows = await store.find_runs("bench", "sensors")
            if rows:
                run_pk = rows[0].id
                counts = await count_running(store, run_pk)
                if counts.get("running", 0) >= 4 * each:
                    break
            if time.time() > release_at - args.window:
                raise SystemExit("sensors did not all start within --max-startup seconds")
        startup_s = time.monotonic() - started

        # The window: steady waiting until the release time.
        cpu0, pokes0, t0 = cpu_seconds(), counter.value, time.time()
        await asyncio.sleep(max(0.0, release_at - time.time()))
        cpu1, pokes1, t1 = cpu_seconds(), counter.value, time.time()
        window = t1 - t0

        # Release: files, the gate (the HTTP server and the time sensors go by the clock).
        def release() -> None:
            for i in range(each):
                (files / f"f{i}").touch()
            (tmp / "gate").touch()

        await asyncio.to_thread(release)
        done_from = time.monotonic()
        while True:
            rows = await store.find_runs("bench", "sensors")
            if rows[0].state in (DagRunState.SUCCESS, DagRunState.FAILED):
                break
            await asyncio.sleep(0.5)
        release_to_done = time.monotonic() - done_from
        states = await count_running(store, rows[0].id)
        state = rows[0].state.value
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)
        server.kill()

    cpu = cpu1 - cpu0
    sensor_hours = args.sensors * window / 3600
    return {
        "sensors": 4 * each,
        "kinds": list(KINDS),
        "poke_interval_s": args.poke_interval,
        "window_s": round(window, 1),
        "startup_s": round(startup_s, 1),
        "cpu_window_s": round(cpu, 2),
        "cpu_s_per_sensor_hour": round(cpu / sensor_hours, 4) if sensor_hours else None,
        "core_fraction": round(cpu / window, 3) if window else None,
        "http_pokes": pokes1 - pokes0,
        "http_pokes_per_s": round((pokes1 - pokes0) / window, 1) if window else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "release_to_done_s": round(release_to_done, 1),
        "run_state": state,
        "states": states,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--poke-interval", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=300.0, help="seconds measured")
    parser.add_argument("--max-startup", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pin(0, 0)
    result = asyncio.run(bench(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
