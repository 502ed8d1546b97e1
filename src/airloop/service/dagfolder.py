"""The DAG folder: every file parsed in a process of its own, changes picked up, errors recorded.

A file is first imported in a child process (``parsing.py``) with a time and memory
limit: a crash, a hang, ``os._exit``, ``sys.exit`` or a memory blow-up there is that
file's import error, with the cause, and nothing else. Only a file that parsed cleanly
is then imported here, in a thread (the scheduler runs its tasks, so it needs the real
objects); that import keeps a time limit as a second line of defence. See ADR
dag-parsing-in-processes.

Files are parsed again when they change (the service watches the folder and calls
``poke``) and all of them every ``dag_reparse_interval`` seconds, for DAGs generated
from something other than their file (a config, an external system).

Two ways in: ``serve`` is the service's background task (at most ``processes``
parses at a time; results are published one file at a time through ``updated``, so
the scheduler never waits on a parse), ``refresh`` parses what is due and returns
(the CLI, which wants the folder as it is now).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from airloop.authoring.dag import DAG
from airloop.dagbag.loader import discover, load_dag_file
from airloop.exceptions import DagFileError
from airloop.runtime import in_thread
from airloop.service.parsing import parse_in_process

log = logging.getLogger(__name__)


@dataclass
class FolderState:
    dags: dict[str, DAG] = field(default_factory=dict)
    errors: dict[str, DagFileError] = field(default_factory=dict)
    #: The traceback of each error, for `airloop dags list-import-errors`.
    tracebacks: dict[str, str] = field(default_factory=dict)


class DagFolder:
    def __init__(
        self,
        folder: Path,
        parse_timeout: float,
        *,
        processes: int = 2,
        memory_limit_mb: int = 0,
        reparse_interval: float = 60.0,
    ) -> None:
        self.folder = folder
        self.parse_timeout = parse_timeout
        self.processes = processes
        self.memory_limit_mb = memory_limit_mb
        self.reparse_interval = reparse_interval
        self._mtimes: dict[Path, int] = {}
        self._by_file: dict[Path, dict[str, DAG]] = {}
        self._errors: dict[Path, tuple[DagFileError, str]] = {}
        # Files whose import hung: not parsed again until they change (each would hold
        # a parser process for the whole time limit on every reparse).
        self._hung: dict[Path, int] = {}
        self._in_flight: set[Path] = set()
        self.last_full_parse = 0.0
        #: Set whenever a file's DAGs or error changed (the service then reads ``state``).
        self.updated = asyncio.Event()
        #: Set once every file found at start has been parsed (or failed).
        self.loaded = asyncio.Event()
        self._poked = asyncio.Event()

    # -- the service's background task -------------------------------------------

    def poke(self) -> None:
        """A file in the folder changed: look at once."""
        self._poked.set()

    async def serve(self) -> None:
        """Parse changed files at once and every file on the reparse interval, until
        cancelled; parser processes are killed and reaped on the way out."""
        queue: asyncio.Queue[Path] = asyncio.Queue()
        due, _ = await self._scan(everything=True)
        for path in due:
            queue.put_nowait(path)
        async with asyncio.TaskGroup() as group:
            for _ in range(self.processes):
                group.create_task(self._worker(queue))
            group.create_task(self._first_round(queue))
            while True:
                wait = self.last_full_parse + self.reparse_interval - time.monotonic()
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        await self._poked.wait()
                except TimeoutError:
                    pass
                self._poked.clear()
                everything = time.monotonic() - self.last_full_parse >= self.reparse_interval
                due, _ = await self._scan(everything=everything)
                for path in due:
                    queue.put_nowait(path)

    async def _first_round(self, queue: asyncio.Queue[Path]) -> None:
        await queue.join()
        self.loaded.set()
        self.updated.set()  # wakes the service even when the folder had no file

    async def _worker(self, queue: asyncio.Queue[Path]) -> None:
        while True:
            path = await queue.get()
            try:
                await self._load(path)
            except Exception:
                # _load records every failure of the file itself; this is a bug of ours
                # (or the forkserver could not start): keep parsing the other files.
                log.exception("could not parse %s", path)
            finally:
                self._in_flight.discard(path)
                queue.task_done()
            self.updated.set()
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if mtime != self._mtimes.get(path) and self._hung.get(path) != mtime:
                self.poke()  # it changed while it was being parsed

    # -- one-shot ----------------------------------------------------------------

    async def refresh(self, *, everything: bool = False) -> tuple[FolderState, bool]:
        """Parse new and changed files (all files with ``everything``) and wait for them.
        Returns the folder's DAGs and errors, and whether anything changed."""
        due, removed = await self._scan(everything=everything)
        changed = bool(due) or removed
        limit = asyncio.Semaphore(self.processes)

        async def one(path: Path) -> None:
            async with limit:
                try:
                    await self._load(path)
                finally:
                    self._in_flight.discard(path)

        async with asyncio.TaskGroup() as group:
            for path in due:
                group.create_task(one(path))
        self.loaded.set()
        return self.state(), changed

    # -- shared ------------------------------------------------------------------

    async def _scan(self, *, everything: bool) -> tuple[list[Path], bool]:
        """Forget deleted files; return the files to parse now (marked in flight), and
        whether a file was deleted."""
        files = await in_thread(_discover_if_there, self.folder)
        removed = set(self._mtimes) - set(files)
        for gone in removed:
            self._mtimes.pop(gone)
            self._by_file.pop(gone, None)
            self._errors.pop(gone, None)
            self.updated.set()
        due = []
        for path in files:
            if path in self._in_flight:
                continue  # its worker looks at the file again when it is done
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if not everything and self._mtimes.get(path) == mtime:
                continue
            if self._hung.get(path) == mtime:
                continue
            self._mtimes[path] = mtime
            self._in_flight.add(path)
            due.append(path)
        if everything:
            self.last_full_parse = time.monotonic()
        return due, bool(removed)

    async def _load(self, path: Path) -> None:
        outcome = await parse_in_process(
            path, time_limit=self.parse_timeout, memory_limit_mb=self.memory_limit_mb
        )
        if outcome.error is not None:
            if outcome.timed_out:
                self._hung[path] = self._mtimes[path]
            self._fail(path, outcome.error, outcome.traceback)
            return
        # It parsed cleanly in a child: import it here, for the tasks this process runs.
        try:
            async with asyncio.timeout(self.parse_timeout):
                loaded = await in_thread(load_dag_file, path)
        except TimeoutError:
            error = DagFileError(
                str(path),
                f"import took longer than {self.parse_timeout:g}s in the scheduler "
                "(though not in a parser process; not retried until the file changes)",
            )
            self._hung[path] = self._mtimes[path]
            self._fail(path, error, "")
            return
        except DagFileError as exc:
            self._fail(path, exc, "".join(traceback.format_exception(exc.__cause__ or exc)))
            return
        self._errors.pop(path, None)
        self._by_file[path] = loaded.dags

    def _fail(self, path: Path, error: DagFileError, trace: str) -> None:
        log.warning("import error: %s", error)
        self._by_file.pop(path, None)  # its DAGs stop being scheduled until it loads again
        self._errors[path] = (error, trace)

    def state(self) -> FolderState:
        state = FolderState()
        for path, dags in sorted(self._by_file.items()):
            for dag_id, dag in dags.items():
                if dag_id in state.dags:
                    error = DagFileError(
                        str(path), f"DAG {dag_id!r} is also defined in {state.dags[dag_id].fileloc}"
                    )
                    state.errors[str(path)] = error
                    continue
                state.dags[dag_id] = dag
        for path, (error, trace) in self._errors.items():
            state.errors[str(path)] = error
            state.tracebacks[str(path)] = trace
        return state


def _discover_if_there(folder: Path) -> list[Path]:
    """The folder's DAG files; none while the folder does not exist (blocking: a thread)."""
    return discover(folder) if folder.exists() else []
