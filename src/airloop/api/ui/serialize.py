"""Records as the JSON the pages' scripts and the live stream read (the contract's
DagRun and grid cell shapes)."""

from __future__ import annotations

from typing import Any

from airloop.core.masking import redact
from airloop.store.read_records import GridCell
from airloop.store.records import DagRunRow


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def run_json(run: DagRunRow) -> dict[str, Any]:
    """A DagRun; conf masked (values under sensitive names become ``***``)."""
    return {
        "run_id": run.run_id,
        "dag_id": run.dag_id,
        "state": run.state.value,
        "run_type": run.run_type,
        "logical_date": _iso(run.logical_date),
        "data_interval_start": _iso(run.data_interval_start),
        "data_interval_end": _iso(run.data_interval_end),
        "start_date": _iso(run.start_date),
        "end_date": _iso(run.end_date),
        "created_at": _iso(run.created_at),
        "note": run.note,
        "conf": redact(run.params),
    }


def cell_json(run_id: str, cell: GridCell) -> dict[str, Any]:
    """A grid cell: the run (by run id) and task, and its instances counted per state."""
    return {
        "run_id": run_id,
        "task_id": cell.task_id,
        "counts": cell.counts,
        "total": cell.total,
    }
