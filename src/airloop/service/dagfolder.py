"""The DAG folder: every file loaded in isolation, changes picked up, errors recorded.

A file is imported in a thread of its own with a time limit, so a file that hangs or
crashes at import is an import error about that file and nothing else. Files are
reloaded when they change (the service watches the folder with watchfiles) and all of
them every ``dag_reparse_interval`` seconds, for DAGs generated from something other
than their file (a config, an external system).
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

log = logging.getLogger(__name__)


@dataclass
class FolderState:
    dags: dict[str, DAG] = field(default_factory=dict)
    errors: dict[str, DagFileError] = field(default_factory=dict)
    #: The traceback of each error, for `airloop dags list-import-errors`.
    tracebacks: dict[str, str] = field(default_factory=dict)


class DagFolder:
    def __init__(self, folder: Path, parse_timeout: float) -> None:
        self.folder = folder
        self.parse_timeout = parse_timeout
        self._mtimes: dict[Path, int] = {}
        self._by_file: dict[Path, dict[str, DAG]] = {}
        self._errors: dict[Path, tuple[DagFileError, str]] = {}
        # Files whose import hung: not imported again until they change (each hung
        # import leaves a thread behind, and would delay every reparse by the timeout).
        self._hung: dict[Path, int] = {}
        self.last_full_parse = 0.0

    async def refresh(self, *, everything: bool = False) -> tuple[FolderState, bool]:
        """Load new and changed files (all files with ``everything``). Returns the
        folder's DAGs and errors, and whether anything changed."""
        files = await in_thread(discover, self.folder) if self.folder.exists() else []
        changed = False
        for gone in set(self._mtimes) - set(files):
            self._mtimes.pop(gone)
            self._by_file.pop(gone, None)
            self._errors.pop(gone, None)
            changed = True
        for path in files:
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if not everything and self._mtimes.get(path) == mtime:
                continue
            if self._hung.get(path) == mtime:
                continue
            self._mtimes[path] = mtime
            await self._load(path)
            changed = True
        if everything:
            self.last_full_parse = time.monotonic()
        return self.state(), changed

    async def _load(self, path: Path) -> None:
        try:
            async with asyncio.timeout(self.parse_timeout):
                loaded = await in_thread(load_dag_file, path)
        except TimeoutError:
            error = DagFileError(
                str(path),
                f"import took longer than {self.parse_timeout:g}s (not retried until the file changes)",
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
