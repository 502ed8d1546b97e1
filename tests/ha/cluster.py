"""Several real ``airloop scheduler`` processes over one DAG folder and one database.

Each scheduler gets a home of its own (logs, task logs) and its stdout/stderr in files
the tests read; settings reach them as AIRLOOP_* variables. Each runs in a session of
its own so that teardown also reaches its children (DAG parsers, executor workers),
even after the test SIGKILLed the scheduler itself. Teardown is bounded: SIGCONT,
SIGTERM, a wait, then SIGKILL of the whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .db import Db

#: Variables that would make rich think it writes to a terminal.
_TERMINAL_HINTS = ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
#: How long a scheduler gets to stop on SIGTERM before its group is killed.
STOP_TIMEOUT = 30.0


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment without stray AIRLOOP_* variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRLOOP_") and k not in _TERMINAL_HINTS
    }
    env.update(COLUMNS="250", NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@dataclass
class Scheduler:
    """One ``airloop scheduler`` process."""

    name: str
    home: Path
    proc: subprocess.Popen[bytes]
    stopped: bool = False
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr_path(self) -> Path:
        return self.home / "stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.home / "stdout.log"

    def output(self) -> str:
        """What it said so far (stdout then stderr)."""
        parts = [p.read_text(errors="replace") for p in (self.stdout_path, self.stderr_path)]
        return "\n".join(parts)

    def task_logs(self) -> list[Path]:
        logs = self.home / "logs"
        return sorted(p for p in logs.rglob("*") if p.is_file()) if logs.exists() else []

    def kill(self) -> None:
        """SIGKILL the scheduler alone (a crash: its children are orphaned)."""
        os.kill(self.pid, signal.SIGKILL)
        self.killed = True

    def stop(self) -> None:
        """SIGSTOP the scheduler process (a pause: GC, VM freeze, swap storm)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.stopped = False

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    """The schedulers of one test, their shared settings, and the CLI beside them."""

    root: Path
    dags: Path
    env: dict[str, str]
    schedulers: list[Scheduler] = field(default_factory=list)

    def cli_env(self, home: Path | None = None) -> dict[str, str]:
        return base_env({**self.env, "AIRLOOP_HOME": str(home or self.root / "cli-home")})

    def start(self, name: str) -> Scheduler:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        with (home / "stdout.log").open("wb") as out, (home / "stderr.log").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airloop", "scheduler", "--dags-folder", str(self.dags)],
                env=self.cli_env(home),
                cwd=home,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        scheduler = Scheduler(name, home, proc)
        self.schedulers.append(scheduler)
        return scheduler

    async def cli(self, *args: str, within: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``airloop <args>`` in a process of its own, awaited without blocking the loop."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "airloop",
            *args,
            env=self.cli_env(),
            cwd=self.root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return subprocess.CompletedProcess(
            ["airloop", *args], proc.returncode, out.decode(), err.decode()
        )

    async def alive_in_status(self) -> set[int]:
        """Pids of this cluster's schedulers that ``airloop scheduler status`` calls
        alive (its table: a "pid" and an "alive" column, yes or no)."""
        done = await self.cli("scheduler", "status", within=60)
        pids = {str(s.pid): s.pid for s in self.schedulers}
        columns: list[str] = []
        alive: set[int] = set()
        for line in done.stdout.splitlines():
            cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
            if "pid" in cells and "alive" in cells:
                columns = cells
            elif columns and len(cells) == len(columns):
                row = dict(zip(columns, cells, strict=True))
                if row["pid"] in pids and row["alive"] == "yes":
                    alive.add(pids[row["pid"]])
        return alive

    async def wait_alive(self, count: int, db: Db, within: float = 120.0) -> None:
        """Until ``count`` of ours are registered and running in the database, and
        ``airloop scheduler status`` shows each of them alive."""
        pids = {s.pid for s in self.schedulers}
        deadline = time.monotonic() + within
        running: set[int] = set()
        while len(running) < count:
            for s in self.schedulers:
                if not s.alive() and not s.killed:
                    raise AssertionError(f"scheduler {s.name} exited:\n{s.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(running)} of {count} schedulers running after {within:g}s:\n"
                    + "\n".join(f"--- {s.name}:\n{s.output()[-3000:]}" for s in self.schedulers)
                )
            await asyncio.sleep(0.5)
            try:
                rows = await db.registry()
            except Exception:  # noqa: BLE001 - the schema is still being created
                continue
            running = {r["pid"] for r in rows if r["state"] == "running"} & pids
        shown = await self.alive_in_status()
        status = await self.cli("scheduler", "status")
        assert shown >= running, f"status shows {shown} of {running} alive:\n{status.stdout}"

    async def shutdown(self) -> None:
        """SIGCONT what is stopped, SIGTERM every scheduler, wait, SIGKILL the groups."""
        for s in self.schedulers:
            if s.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGCONT)
                    s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for s in self.schedulers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(s.proc.wait, max(0.1, deadline - time.monotonic()))
        for s in self.schedulers:
            # The group: the scheduler if it is still there, and its orphans.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(s.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(s.proc.wait, 10)
