"""Helpers for the CLI end-to-end tests: run the installed ``airloop`` script, read its DB.

Every call gets its own AIRLOOP_HOME (so its own SQLite file and logs), a working
directory without an ``airloop.toml``, and an environment with no stray AIRLOOP_*
variable. The database is only ever opened read-only, with the stdlib's sqlite3.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The installed console script (not ``python -m``): what a user runs.
AIRLOOP = Path(sys.executable).parent / "airloop"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: No single CLI call in these tests should take anywhere near this long.
CALL_TIMEOUT = 60.0
#: Parallel CLI processes when a module runs a batch of independent calls.
WORKERS = 4

#: Variables that would make rich think it writes to a terminal (live progress, colour).
_TERMINAL_HINTS = ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def cli_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRLOOP_") and k not in _TERMINAL_HINTS
    }
    env.update(
        AIRLOOP_HOME=str(home),
        COLUMNS="250",  # rich tables: no truncated paths or ids
        NO_COLOR="1",
        PYTHONDONTWRITEBYTECODE="1",  # no __pycache__ next to the DAG files
    )
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Call:
    """One ``airloop`` invocation: arguments, its AIRLOOP_HOME, extra env, cwd."""

    args: tuple[str, ...]
    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    home: Path
    seconds: float

    @property
    def db(self) -> Path:
        return self.home / "airloop.db"

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def transcript(self) -> str:
        """The command, its exit code and its output: the message of a failed assertion."""
        return (
            f"$ airloop {' '.join(self.args)}\n"
            f"exit code {self.code} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


def _prepare(call: Call) -> tuple[list[str], dict[str, str], Path]:
    cwd = call.cwd or call.home.parent
    cwd.mkdir(parents=True, exist_ok=True)
    return [str(AIRLOOP), *call.args], cli_env(call.home, call.env), cwd


def run(call: Call, timeout: float = CALL_TIMEOUT) -> CliResult:
    argv, env, cwd = _prepare(call)
    t0 = time.monotonic()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(
        call.args, done.returncode, done.stdout, done.stderr, call.home, time.monotonic() - t0
    )


def airloop(*args: str | Path, home: Path, env: Mapping[str, str] | None = None) -> CliResult:
    return run(Call(tuple(map(str, args)), home, env or {}))


def run_many(calls: Mapping[str, Call]) -> dict[str, CliResult]:
    """Independent calls at once (each CLI start costs about a second of CPU)."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(run, call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


@contextlib.contextmanager
def spawn(call: Call) -> Iterator[subprocess.Popen[str]]:
    """Start ``airloop`` in the background; it is killed and reaped however the test ends."""
    argv, env, cwd = _prepare(call)
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with proc:  # closes the pipes and waits on the way out
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows as dicts, read-only (the CLI may still be writing in WAL mode)."""
    uri = f"{db.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params).fetchall()]


def dag_runs(db: Path) -> list[dict[str, Any]]:
    """Every dag_run row; an empty list when the database was never created."""
    if not db.exists():
        return []
    return query(db, "SELECT * FROM dag_run ORDER BY id")


def task_instances(db: Path, run_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Task instance rows keyed ``task`` or ``task[i]`` (of one run, or the latest one)."""
    params: tuple[str, ...] = ()
    if run_id is None:
        where = "dag_run_id = (SELECT max(id) FROM dag_run)"
    else:
        where, params = "dag_run_id = (SELECT id FROM dag_run WHERE run_id = ?)", (run_id,)
    rows = query(db, f"SELECT * FROM task_instance WHERE {where}", params)
    return {
        (r["task_id"] if r["map_index"] < 0 else f"{r['task_id']}[{r['map_index']}]"): r
        for r in rows
    }


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` (short sleeps, bounded); True as soon as it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return path


def line_of(path: Path, marker: str) -> int:
    """The 1-based number of the first line of ``path`` containing ``marker``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")
