"""``airloop tasks clear`` follows ExternalTaskMarkers into the DAGs that depend on them.

Clearing a marker task instance also clears the marker's ``external_task_id`` in the
run of ``external_dag_id`` at the marker's ``logical_date`` -- its values as rendered
when the marker ran (stored with its try; a marker that never ran is reported, not
followed). When that task is itself a marker, it is followed too, at most
``recursion_depth`` (of the first marker) levels deep. As ``airloop tasks clear`` clears
only the tasks it is given (not their downstream), so does each step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airloop.core.states import TaskState
from airloop.exceptions import AirloopError, RunExistsError
from airloop.store.records import DagRunRow
from airloop.store.service import ServiceStore

MARKER = "ExternalTaskMarker"
_FAILED = (TaskState.FAILED, TaskState.UPSTREAM_FAILED)


@dataclass
class Cleared:
    """What a clear did: task instances per (dag_id, run_id), and notes to show."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def clear_following_markers(
    service: ServiceStore,
    run: DagRunRow,
    task_ids: list[str] | None,
    failed_only: bool,
    map_indexes: Sequence[int] | None = None,
) -> Cleared:
    """Clear the run's task instances (as ``ServiceStore.clear``; ``map_indexes``: only
    these instances of the tasks), then the external tasks of the ExternalTaskMarkers
    among them, recursively."""
    done = Cleared()
    await _clear(
        service, run, task_ids, failed_only, None, done, first=True, map_indexes=map_indexes
    )
    return done


async def _clear(
    service: ServiceStore,
    run: DagRunRow,
    task_ids: list[str] | None,
    failed_only: bool,
    depth_left: int | None,
    done: Cleared,
    *,
    first: bool = False,
    map_indexes: Sequence[int] | None = None,
) -> None:
    store = service.store
    markers = [
        ti
        for ti in await store.task_instances(run.id)
        if ti.operator == MARKER
        and (task_ids is None or ti.task_id in task_ids)
        and (not failed_only or ti.state in _FAILED)
        and (map_indexes is None or ti.map_index in map_indexes)
    ]
    try:
        done.counts[(run.dag_id, run.run_id)] = await service.clear(
            run.id, task_ids, failed_only, map_indexes
        )
    except RunExistsError as exc:
        if first:
            raise
        done.notes.append(f"run {run.run_id!r} of {run.dag_id!r} not cleared: {exc}")
        return
    for ti in markers:
        rendered = await store.rendered_fields(run.id, ti.task_id, ti.map_index)
        where = f"marker {ti.task_id!r} of {run.dag_id!r}"
        if rendered is None:
            done.notes.append(f"{where} never ran: its external task is not cleared")
            continue
        fields = json.loads(rendered.fields)
        depth = int(fields.get("recursion_depth") or 10) if depth_left is None else depth_left
        if depth <= 0:
            raise AirloopError(
                f"maximum recursion depth reached at {where}: too many tasks to clear, or "
                "the markers form a cycle"
            )
        try:
            when = datetime.fromisoformat(str(fields["logical_date"]))
        except (KeyError, ValueError):
            done.notes.append(f"{where}: logical_date {fields.get('logical_date')!r} unreadable")
            continue
        when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        dag_id, task_id = str(fields["external_dag_id"]), str(fields["external_task_id"])
        target = await store.find_run_at(dag_id, when)
        if target is None:
            done.notes.append(f"{where}: DAG {dag_id!r} has no run at {when.isoformat()}")
            continue
        await _clear(service, target, [task_id], False, depth - 1, done)


__all__ = ["Cleared", "clear_following_markers"]
