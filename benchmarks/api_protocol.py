"""uvicorn's HTTP protocol on the loop: h11 (pure Python, airloop's default) against
httptools (C; not a dependency: install it into the venv to compare).

    python benchmarks/api_protocol.py [--requests 1000] [--repeats 2] [h11 httptools]

Serves the real app with uvicorn in a child process (the database of
``benchmarks/api_cost.py``, built once in a temporary folder), sends ``requests``
requests of each kind over one kept-alive connection, and reads the CPU time of the
server's main thread (the loop's; ``/proc/PID/task/PID/stat``) before and after.
Unlike ``api_cost.py`` this includes the socket and uvicorn's parsing and writing,
and not the client. Prints JSON: per protocol and request kind, ms per request of
each repeat (a new server each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PATHS = {
    "404 (no such route)": "/api/v1/no/such/route",
    "taskInstances?limit=100": "/api/v1/dags/api_cost/dagRuns/manual__cost/taskInstances?limit=100",
    "grid": "/api/v1/dags/api_cost/grid",
}


async def serve(home: Path, http: str, port: int) -> None:
    import uvicorn

    sys.path.insert(0, str(Path(__file__).parent))
    import api_cost

    from airloop.api.app import create_app
    from airloop.settings import Settings
    from airloop.store.runs import Store

    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'airloop.db'}")
    store = await Store.open(settings.database_url)
    if not (home / "prepared").exists():
        await api_cost.prepare(store, 10_000)
        (home / "prepared").touch()
    config = uvicorn.Config(
        create_app(settings, store=store),
        host="127.0.0.1",
        port=port,
        http=http,  # type: ignore[arg-type]
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    await uvicorn.Server(config).serve()


def loop_cpu(pid: int) -> float:
    """Seconds of CPU the process's main thread used so far."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def measure(home: Path, http: str, requests: int) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(home), http, str(port)]
    server = subprocess.Popen(command)
    out: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    client.get("/api/v1/version")
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            for name, path in PATHS.items():
                for _ in range(30):
                    client.get(path)
                before = loop_cpu(server.pid)
                for _ in range(requests):
                    client.get(path)
                out[name] = round((loop_cpu(server.pid) - before) / requests * 1000, 3)
    finally:
        server.terminate()
        server.wait()
    return out


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        asyncio.run(serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("protocols", nargs="*", default=["h11", "httptools"])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="airloop-api-protocol-") as tmp:
        for _ in range(args.repeats):
            for http in args.protocols:
                for name, ms in measure(Path(tmp), http, args.requests).items():
                    results.setdefault(http, {}).setdefault(name, []).append(ms)
    print(
        json.dumps(
            {"requests": args.requests, "load_average": os.getloadavg()[0], "ms": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
