"""Parse one DAG file in a child process: whatever the file does at import (``os._exit``,
a segfault, a hang, a memory blow-up) happens to the child, and comes back as that
file's import error with the cause (see ADR dag-parsing-in-processes).

Children are forked by multiprocessing's forkserver (never ``fork`` from the
scheduler, which runs threads and an event loop), with airloop already imported, so a
parse costs a fork, not an interpreter start. Each child starts a session of its own
(a file that spawns processes is killed with them), caps its address space
(``RLIMIT_AS``), writes its stdout/stderr and a faulthandler dump to a file, and its
verdict (the DAG ids, or the error) to another. The parent waits on the child's
sentinel, never blocking the loop, and kills the session on timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import traceback
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from airloop.exceptions import DagFileError
from airloop.runtime import in_thread

#: How much of a child's output is kept for the error (the end, where the cause is).
OUTPUT_TAIL = 4000
#: A killed child is reaped by the forkserver at once; this only bounds a stuck kernel.
KILL_WAIT = 10.0

_MB = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """What the child found: the DAG ids, or the file's error and its traceback."""

    dag_ids: tuple[str, ...] = ()
    error: DagFileError | None = None
    traceback: str = ""
    #: True when the child was killed for taking longer than the time limit.
    timed_out: bool = False


def _child(path: str, result_file: str, output_file: str, memory_limit_mb: int) -> None:
    """In the child: import the file, write the verdict. Runs in a fresh forked process."""
    import faulthandler
    import resource
    import sys

    from airloop.dagbag.loader import load_dag_file

    with contextlib.suppress(OSError):
        os.setsid()  # the parent kills the whole session: the file may start processes
    out = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    faulthandler.enable(file=sys.stderr)  # a segfault leaves the file's line behind
    if memory_limit_mb > 0:
        limit = memory_limit_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    verdict: dict[str, Any]
    try:
        loaded = load_dag_file(path)
    except DagFileError as exc:
        message = str(exc).removeprefix(f"{exc.location}: ")
        trace = "".join(traceback.format_exception(exc.__cause__ or exc))
        verdict = {"error": message, "line": exc.line, "traceback": trace[-20_000:]}
    else:
        verdict = {"dag_ids": sorted(loaded.dags)}
    with open(result_file, "w") as fh:
        json.dump(verdict, fh)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: atexit hooks and finalizers of the file's imports could
    # still hang or crash, after the verdict is written.
    os._exit(0)


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    # Effective only before the forkserver starts (the first child of this process):
    # children then start with airloop's loader imported. The process executor
    # shares the server; preloading is harmless to it.
    ctx.set_forkserver_preload(["airloop.dagbag.loader"])
    return ctx


async def _exited(process: BaseProcess) -> None:
    """Wait for the child to end, without blocking the loop (its sentinel turns readable)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fd = process.sentinel

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    process.join(0)  # collects the exit status (already there: no wait)


def _kill(process: BaseProcess) -> None:
    pid = process.pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the child and anything it started
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # in case it had not made its session yet


async def parse_in_process(path: Path, *, time_limit: float, memory_limit_mb: int) -> ParseOutcome:
    """Import ``path`` in a child process; its fate is the file's verdict."""
    workdir = await in_thread(tempfile.mkdtemp, "", "airloop-parse-")
    result_file = os.path.join(workdir, "result.json")
    output_file = os.path.join(workdir, "output.txt")
    process = _context().Process(
        target=_child,
        args=(str(path), result_file, output_file, memory_limit_mb),
        name=f"airloop-parse-{path.name}",
        daemon=True,
    )
    # The first start launches the forkserver (blocking): in a thread, and awaited to
    # the end even if we are cancelled, so that a child started late is still killed.
    started = asyncio.ensure_future(in_thread(process.start))
    try:
        await asyncio.shield(started)
        try:
            async with asyncio.timeout(time_limit):
                await _exited(process)
        except TimeoutError:
            _kill(process)
            return ParseOutcome(
                error=DagFileError(
                    str(path),
                    f"import took longer than {time_limit:g}s (the parser process was killed; "
                    "not retried until the file changes)",
                ),
                timed_out=True,
            )
        return await in_thread(_verdict, path, process.exitcode, workdir, memory_limit_mb)
    finally:
        await asyncio.wait([started])
        if process.pid is not None and process.exitcode is None:
            _kill(process)  # cancelled (the service stops) or timed out
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_WAIT):
                    await _exited(process)
        if process.exitcode is not None:
            process.close()
        elif process.pid is not None:
            log.error("parser process %d for %s did not end after SIGKILL", process.pid, path)
        await in_thread(shutil.rmtree, workdir, True)


def _verdict(path: Path, exitcode: int | None, workdir: str, memory_limit_mb: int) -> ParseOutcome:
    """Read what the child left (in a thread: files)."""
    shown = str(path)
    try:
        with open(os.path.join(workdir, "result.json")) as fh:
            verdict = json.load(fh)
    except (OSError, ValueError):
        verdict = None
    if exitcode == 0 and verdict is not None:
        if "error" in verdict:
            error = DagFileError(shown, verdict["error"], line=verdict.get("line"))
            return ParseOutcome(error=error, traceback=verdict.get("traceback", ""))
        return ParseOutcome(dag_ids=tuple(verdict["dag_ids"]))
    output = _tail(os.path.join(workdir, "output.txt"))
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        cause = f"the import crashed the parser process ({name})"
        if name == "SIGKILL" and memory_limit_mb:
            cause += f"; killed from outside, possibly for memory (limit {memory_limit_mb} MB)"
    else:
        cause = f"the import ended the parser process (exit code {exitcode})"
    return ParseOutcome(
        error=DagFileError(shown, cause, line=_line_of(output, path)), traceback=output
    )


def _tail(file: str) -> str:
    try:
        with open(file, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - OUTPUT_TAIL))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _line_of(output: str, path: Path) -> int | None:
    """The file's innermost line in a faulthandler dump (most recent call first)."""
    pattern = re.compile(rf'File "{re.escape(str(path))}", line (\d+)')
    found = pattern.search(output)
    return int(found.group(1)) if found else None
