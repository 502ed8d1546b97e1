"""Files the server reads at paths taken from the database: a DAG's ``fileloc`` (the
Code tab, ``/dags/{dag_id}/source``) and a try's log ``path`` (``task_log``). A
crafted row must not make the server read any file it can: a path is used only when,
with symlinks followed, it lies inside the folder it belongs to (the DAGs folder, the
logs folder). Blocking functions: callers run them with ``airloop.runtime.in_thread``.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideFolderError(Exception):
    """A path from the database that points outside its folder (not read)."""

    def __init__(self, path: str, folder: Path, what: str) -> None:
        super().__init__(f"{path} is outside the {what} ({folder}): not read")


def confined(path: str, folder: Path, what: str) -> str:
    """``path`` with symlinks resolved, when it lies inside ``folder``; else
    OutsideFolderError. ``what`` names the folder in the message ("logs folder")."""
    real = os.path.realpath(path)
    root = os.path.realpath(folder)
    if os.path.commonpath([real, root]) != root:
        raise OutsideFolderError(path, folder, what)
    return real


def read_dag_source(fileloc: str, dags_folder: Path) -> str | None:
    """The DAG file's text (None: no such file); OutsideFolderError for a file outside
    the DAGs folder."""
    real = confined(fileloc, dags_folder, "DAGs folder")
    try:
        return Path(real).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
