"""The demo in the web UI: 1,000 AWS Batch jobs on a local emulator, watched live in
the browser.

    make demo-ui     # or: .venv/bin/python examples/batch_demo_ui.py --jobs 1000 --job-seconds 30

Starts the Batch emulator (moto's server plus job lifecycles) on 127.0.0.1, then
``airloop standalone`` (the scheduler and the web UI in one process) over a DAG folder
holding examples/batch_fanout.py, triggers one run of ``batch_fanout`` through the API
and prints the page to open: http://127.0.0.1:8080/dags/batch_fanout/grid. The grid
shows the 1,000 ``job`` instances as one bar whose colours move as the jobs progress;
click it for the instances, 100 per page. Keeps serving after the run ends, until
Ctrl-C. State and logs go to ./.airloop-ui (or $AIRLOOP_HOME).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

import httpx

from airloop.providers.aws.emulator import BatchEmulator

HERE = Path(__file__).resolve().parent
DAG_ID = "batch_fanout"


async def wait_for(client: httpx.AsyncClient, what: str, check: object, seconds: float) -> None:
    """Poll ``check()`` (an async callable returning bool) until true or ``seconds`` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            if await check():  # type: ignore[operator]
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


async def trigger(client: httpx.AsyncClient, conf: dict[str, int]) -> str:
    """Trigger the run as a script on this machine does with auth = 'none': the
    double-submit CSRF cookie, echoed in the X-CSRF-Token header."""
    await client.get("/api/v1/version")
    token = client.cookies.get("airloop_csrf", "")
    response = await client.post(
        f"/api/v1/dags/{DAG_ID}/dagRuns", json={"conf": conf}, headers={"X-CSRF-Token": token}
    )
    if response.status_code != 201:
        raise SystemExit(f"trigger failed: {response.status_code} {response.text}")
    return str(response.json()["run_id"])


def prepare() -> tuple[Path, Path]:
    """The home folder and a DAG folder holding only the demo DAG."""
    home = Path(os.environ.get("AIRLOOP_HOME", HERE.parent / ".airloop-ui")).resolve()
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "batch_fanout.py", dags / "batch_fanout.py")
    return home, dags


async def main(
    home: Path,
    dags: Path,
    jobs: int,
    seconds: int,
    port: int,
    interval: float,
    exit_when_done: bool,
) -> int:
    # SIGTERM as Ctrl-C: cancel, so the server below is stopped too.
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    async with BatchEmulator() as emu:
        await emu.setup_batch(queue="airloop", job_definition="airloop-job")
        await emu.configure(phase_seconds=[0.5, 0.5, 2.0, 1.0])
        env = {
            **os.environ,
            "AIRLOOP_HOME": str(home),
            "AIRLOOP_DAGS_FOLDER": str(dags),
            "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.5",
            "AIRLOOP_AWS__ENDPOINT_URL": emu.endpoint_url,
            "AIRLOOP_AWS__REGION": "us-east-1",
            "AIRLOOP_AWS__ACCESS_KEY_ID": "testing",
            "AIRLOOP_AWS__SECRET_ACCESS_KEY": "testing",
            "AIRLOOP_AWS__BATCH_POLL_INTERVAL": str(interval),
        }
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airloop", "standalone", "--port", str(port), env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                async def healthy() -> bool:
                    return (await client.get("/api/v1/health")).status_code == 200

                async def parsed() -> bool:
                    return (await client.get(f"/api/v1/dags/{DAG_ID}")).status_code == 200

                await wait_for(client, "the server", healthy, 60)
                await wait_for(client, f"{DAG_ID} to be parsed", parsed, 120)
                run_id = await trigger(client, {"jobs": jobs, "seconds": seconds})
                print(f"\n{jobs:,} Batch jobs of {seconds}s: run {run_id}")
                print(f"watch it: {base}/dags/{DAG_ID}/grid   (Ctrl-C stops)\n", flush=True)

                async def finished() -> bool:
                    run = (await client.get(f"/api/v1/dags/{DAG_ID}/dagRuns/{run_id}")).json()
                    return run["state"] in ("success", "failed")

                await wait_for(client, "the run", finished, 24 * 3600)
                run = (await client.get(f"/api/v1/dags/{DAG_ID}/dagRuns/{run_id}")).json()
                if exit_when_done:
                    print(f"\nrun {run_id} ended: {run['state']}")
                    return 0 if run["state"] == "success" else 1
                print(f"\nrun {run_id} ended: {run['state']}; still serving {base} (Ctrl-C stops)")
            await server.wait()
        finally:
            if server.returncode is None:
                server.send_signal(signal.SIGTERM)
                await server.wait()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=int, default=30)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument(
        "--exit-when-done", action="store_true", help="stop when the run ends (tests)"
    )
    args = parser.parse_args()
    try:
        home, dags = prepare()
        sys.exit(
            asyncio.run(
                main(
                    home,
                    dags,
                    args.jobs,
                    args.job_seconds,
                    args.port,
                    args.poll_interval,
                    args.exit_when_done,
                )
            )
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
