"""``SubprocessHook``: Airflow's, async. One command in a process group of its own.

The command's stdout and stderr (merged) are read as they come and handed over line
by line; the last line is the result's ``output``. When the command ends, is
cancelled or times out, its WHOLE process group is terminated: SIGTERM, then SIGKILL
for whatever is still alive ``TERMINATE_GRACE`` seconds later, and the direct child
is reaped, so nothing the command started in its group outlives the task. See
docs/adr/0033-bash-and-local-operators.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airloop.exceptions import AirloopError
from airloop.hooks.base import BaseHook
from airloop.runtime import in_thread

log = logging.getLogger(__name__)

#: How long the process group gets to exit after SIGTERM before it is sent SIGKILL
#: (kept under the runner's grace for a cancelled task, 5 s).
TERMINATE_GRACE = 3.0
#: How long processes sent SIGKILL get to die (they cannot refuse; this bounds a
#: process stuck in the kernel).
_KILL_WAIT = 1.0
#: How often the group is checked while it is given its grace.
_GROUP_CHECK_INTERVAL = 0.05
#: A line longer than this is cut into lines of this size rather than held whole.
MAX_LINE = 1024 * 1024


class SubprocessStartError(AirloopError):
    """The command could not be started (a missing working directory, no bash...)."""


@dataclass(frozen=True, slots=True)
class SubprocessResult:
    """How the command ended: its exit code and the last line of its output."""

    exit_code: int
    output: str


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``.

    Reads /proc where there is one (zombies waiting for their parent to reap them do
    not count); elsewhere asks the kernel (zombies count). Blocking: off the loop.
    """
    if os.path.isdir("/proc/self"):
        with os.scandir("/proc") as entries:
            names = [e.name for e in entries if e.name.isdigit()]
        for name in names:
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def terminate_group(pgid: int, grace: float = TERMINATE_GRACE) -> bool:
    """SIGTERM to the group, SIGKILL to what is alive ``grace`` seconds later.

    Returns True when the group had to be killed. If cancelled meanwhile, the group
    is killed at once and the cancellation goes on.
    """
    _signal_group(pgid, signal.SIGTERM)
    try:
        if await _group_gone(pgid, grace):
            return False
    except asyncio.CancelledError:
        await kill_group(pgid)
        raise
    await kill_group(pgid)
    return True


async def _group_gone(pgid: int, within: float) -> bool:
    """Whether the group is empty of live processes within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await in_thread(group_alive, pgid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_GROUP_CHECK_INTERVAL)
    return True


async def kill_group(pgid: int) -> None:
    """SIGKILL to the group, then wait (bounded) until its processes have died."""
    _signal_group(pgid, signal.SIGKILL)
    if not await _group_gone(pgid, _KILL_WAIT):
        log.error("process group %s still has live processes after SIGKILL", pgid)


class _LineSplitter:
    """Cuts output into lines as it arrives (Airflow's decoding: ``backslashreplace``,
    trailing whitespace stripped) and hands each over; keeps the last one."""

    def __init__(self, encoding: str, on_line: Callable[[str], None] | None) -> None:
        self.encoding = encoding
        self.on_line = on_line
        self.pending = b""
        self.last = ""

    def _emit(self, raw: bytes) -> None:
        for start in range(0, max(len(raw), 1), MAX_LINE):
            line = raw[start : start + MAX_LINE].decode(self.encoding, "backslashreplace")
            self.last = line.rstrip()
            if self.on_line is not None:
                self.on_line(self.last)

    def feed(self, data: bytes) -> None:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for raw in lines:
            self._emit(raw)
        if len(self.pending) >= MAX_LINE:  # a very long line: hand over what is whole
            whole = len(self.pending) - len(self.pending) % MAX_LINE
            self._emit(self.pending[:whole])
            self.pending = self.pending[whole:]

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""


class _CommandProtocol(asyncio.SubprocessProtocol):
    """The command's output as it comes, and its exit (the child reaped) apart from
    its output closing: a process it left behind may hold the output open."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lines: _LineSplitter) -> None:
        self.lines = lines
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.lines.feed(data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class SubprocessHook(BaseHook):
    """Runs one command at a time; ``pid`` is the running command's (its group's id)."""

    hook_name = "Subprocess"

    def __init__(self) -> None:
        self.pid: int | None = None

    async def run_command(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        output_encoding: str = "utf-8",
        cwd: str | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> SubprocessResult:
        """Run ``command`` (``["bash", "-c", "..."]``) until it ends; ``on_line`` gets
        each line of its output (stdout and stderr merged) as it comes."""
        loop = asyncio.get_running_loop()
        lines = _LineSplitter(output_encoding, on_line)
        protocol = _CommandProtocol(loop, lines)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: protocol,
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # its own process group: signalled as a whole
            )
        except OSError as exc:
            raise SubprocessStartError(_start_problem(command, cwd, exc)) from None
        pid = self.pid = transport.get_pid()
        try:
            # Shielded: the future stays usable below if this await is cancelled.
            await asyncio.shield(protocol.exited)
            exit_code = transport.get_returncode()
            assert exit_code is not None
            # Whatever it left running in its group goes with it (it would hold the
            # output open, or be orphaned).
            if await in_thread(group_alive, pid):
                log.warning("the command exited leaving processes in its group: terminating them")
                await terminate_group(pid)
            done, _ = await asyncio.wait({protocol.output_closed}, timeout=TERMINATE_GRACE)
            if not done:
                log.warning(
                    "a process outside the command's process group still holds its "
                    "output open: not waiting for it"
                )
            lines.flush()
            return SubprocessResult(exit_code, lines.last)
        except BaseException:
            # Cancelled (a timeout, a stop) or broken: the whole group goes, bounded.
            if not protocol.exited.done() or await in_thread(group_alive, pid):
                try:
                    await terminate_group(pid)
                finally:
                    _signal_group(pid, signal.SIGKILL)  # cancelled again: at once
                    # Reaped by asyncio's child watcher: wait for it (bounded).
                    await asyncio.wait({protocol.exited}, timeout=TERMINATE_GRACE)
            raise
        finally:
            transport.close()
            self.pid = None


def _start_problem(command: Sequence[str], cwd: str | None, exc: OSError) -> str:
    """Why the command could not start, in one line."""
    name = exc.filename
    if cwd is not None and name == cwd:
        if isinstance(exc, NotADirectoryError):
            return f"cannot start {command[0]}: cwd {cwd!r} is not a directory"
        if isinstance(exc, FileNotFoundError):
            return f"cannot start {command[0]}: cwd {cwd!r} does not exist"
        return f"cannot start {command[0]}: cwd {cwd!r}: {exc.strerror}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start {command[0]}: {command[0]!r} not found on PATH"
    return f"cannot start {command[0]}: {exc.strerror or exc}"


def context_env_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """The run's identity as Airflow exports it to commands (``AIRFLOW_CTX_*``)."""
    ti = context["ti"]
    found = {
        "AIRFLOW_CTX_DAG_ID": ti.dag_id,
        "AIRFLOW_CTX_TASK_ID": ti.task_id,
        "AIRFLOW_CTX_DAG_RUN_ID": ti.run_id,
        "AIRFLOW_CTX_TRY_NUMBER": str(ti.try_number),
    }
    if ti.map_index >= 0:
        found["AIRFLOW_CTX_MAP_INDEX"] = str(ti.map_index)
    logical_date = context["dag_run"].logical_date
    if logical_date is not None:
        found["AIRFLOW_CTX_LOGICAL_DATE"] = logical_date.isoformat()
    return found


def command_env(
    where: str, env: Mapping[str, Any] | None, append_env: bool, context: Mapping[str, Any]
) -> dict[str, str]:
    """Airflow's rule: no ``env`` inherits this process's environment; an ``env``
    replaces it, or is added to it with ``append_env``; the ``AIRFLOW_CTX_*`` variables
    are set in every case."""
    if env is None:
        found = dict(os.environ)
    else:
        if not isinstance(env, Mapping):
            raise TypeError(f"{where}: env must be a dict of strings, got {type(env).__name__}")
        for key, value in env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"{where}: env must map strings to strings; {key!r} maps to {value!r}"
                )
        found = {**os.environ, **env} if append_env else dict(env)
    found.update(context_env_vars(context))
    return found
