"""Records as the JSON the pages' scripts and the live stream read: the API's own
DagRun and grid cell models (``api.models``), dumped as JSON values, so a page's data
and the stream's events have exactly the API's shapes and masking."""

from __future__ import annotations

from typing import Any

from airloop.api.models import dag_run, grid_cell
from airloop.store.read_records import GridCell
from airloop.store.records import DagRunRow


def run_json(run: DagRunRow) -> dict[str, Any]:
    """A DagRun; conf masked (values under sensitive names become ``***``)."""
    return dag_run(run).model_dump(mode="json")


def cell_json(run_id: str, cell: GridCell) -> dict[str, Any]:
    """A grid cell: the run (by run id) and task, and its instances counted per state."""
    return grid_cell(run_id, cell).model_dump(mode="json")
