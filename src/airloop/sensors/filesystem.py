"""``FileSensor``: waits for a file (or a glob pattern's match) to exist."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.sensor import BaseSensor
from airloop.connections import ConnectionNotFound
from airloop.hooks.base import BaseHook
from airloop.runtime import run_sync

if TYPE_CHECKING:
    from airloop.authoring.context import Context

#: Airflow's default filesystem connection; when it is not defined, no base path.
DEFAULT_FS_CONN_ID = "fs_default"


def find_match(pattern: str, recursive: bool) -> str | None:
    """The first file ``pattern`` matches: a file, or a matched folder holding a file
    (at any depth), as Airflow's FileSensor counts them. Blocking: off the loop."""
    for path in sorted(glob.glob(pattern, recursive=recursive)):
        if os.path.isfile(path):
            return path
        for folder, _, files in os.walk(path):
            if files:
                return os.path.join(folder, files[0])
    return None


class FileSensor(BaseSensor):
    """Airflow's ``FileSensor``: done when ``filepath`` (templated; a glob pattern,
    ``**`` with ``recursive=True``) matches a file, or a folder with a file in it.

    ``filepath`` is joined to the ``path`` in the extra of connection ``fs_conn_id``
    (an absolute ``filepath`` ignores it); the default ``fs_default`` may be left
    undefined (no base path). The connection is looked up once per try, not per poke.
    The file system is checked off the event loop, once per ``poke_interval``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("filepath",)

    def __init__(
        self,
        *,
        filepath: str,
        fs_conn_id: str = DEFAULT_FS_CONN_ID,
        recursive: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filepath = filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = bool(recursive)
        self._base: str | None = None

    async def execute(self, context: Context) -> Any:
        self._base = None  # looked up again on each try
        return await super().execute(context)

    async def _base_path(self) -> str:
        try:
            conn = await BaseHook.aget_connection(self.fs_conn_id)
        except ConnectionNotFound:
            if self.fs_conn_id == DEFAULT_FS_CONN_ID:
                return ""
            raise
        return str(conn.extra_dejson.get("path", "") or "")

    async def poke(self, context: Context) -> bool:  # type: ignore[override]
        if not isinstance(self.filepath, str) or not self.filepath:
            raise TypeError(f"sensor {self.task_id!r}: filepath must be a non-empty string")
        if self._base is None:
            self._base = await self._base_path()
        full = os.path.join(self._base, self.filepath)
        context.log.info("poking for file %s", full)
        found = await run_sync(find_match, full, self.recursive)
        if found is None:
            return False
        context.log.info("found %s", found)
        return True
