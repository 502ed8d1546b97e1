"""What the grid, graph and run pages draw, worked out from the store's records: the
task rows (task groups as collapsible rows, in structure order) and a cell's look (a
square with one state, or a proportional bar of per-state counts for a mapped task)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The order of a bar's segments (finished first, then in flight, then waiting).
STATE_ORDER = (
    "success",
    "failed",
    "upstream_failed",
    "skipped",
    "removed",
    "up_for_retry",
    "running",
    "queued",
    "scheduled",
    "none",
)


@dataclass(frozen=True, slots=True)
class Row:
    """A grid row: a task group (``is_group``) or a task."""

    id: str
    label: str
    depth: int
    #: The ids of the groups holding it, outermost first (collapsing hides descendants).
    groups: tuple[str, ...]
    is_group: bool = False
    is_mapped: bool = False
    operator: str = ""


@dataclass(frozen=True, slots=True)
class Segment:
    state: str
    count: int
    x: float
    width: float


def rows(structure: Mapping[str, Any] | None, task_ids: Iterable[str] = ()) -> list[Row]:
    """The rows in structure order; without a stored structure, the task ids seen."""
    if structure is None:
        return [Row(t, t, 0, ()) for t in sorted(set(task_ids))]
    tasks = {t["task_id"]: t for t in structure.get("tasks", [])}
    out: list[Row] = []

    def walk(group: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for child in group.get("children", []):
            if "task_id" in child:
                info = tasks.get(child["task_id"], {})
                prefix = path[-1] + "." if path else ""
                task_id = child["task_id"]
                out.append(
                    Row(
                        id=task_id,
                        label=task_id[len(prefix) :] if task_id.startswith(prefix) else task_id,
                        depth=len(path),
                        groups=path,
                        is_mapped=bool(info.get("is_mapped")),
                        operator=str(info.get("operator", "")),
                    )
                )
            else:
                group_id = child["id"]
                prefix = path[-1] + "." if path else ""
                label = group_id[len(prefix) :] if group_id.startswith(prefix) else group_id
                out.append(Row(group_id, label, len(path), path, is_group=True))
                walk(child, (*path, group_id))

    walk(structure.get("task_group", {}), ())
    listed = {r.id for r in out if not r.is_group}
    out.extend(Row(t, t, 0, ()) for t in tasks if t not in listed)
    return out


def segments(counts: Mapping[str, int]) -> list[Segment]:
    """A bar's segments, widths in percent of the total (0..100)."""
    total = sum(counts.values())
    if total <= 0:
        return []
    out: list[Segment] = []
    x = 0.0
    ordered = [s for s in STATE_ORDER if counts.get(s)] + sorted(
        s for s in counts if s not in STATE_ORDER and counts[s]
    )
    for state in ordered:
        width = 100.0 * counts[state] / total
        out.append(Segment(state, counts[state], round(x, 3), round(width, 3)))
        x += width
    return out


def single_state(counts: Mapping[str, int]) -> str | None:
    """An unmapped cell's state (its counts have one key)."""
    states = [s for s, n in counts.items() if n]
    return states[0] if len(states) == 1 else None


#: A mapped task's instances, summed up as one state (for a Gantt bar's colour): the
#: first of these any instance is in, else success when all are done.
_OVERALL = ("running", "queued", "scheduled", "up_for_retry", "failed", "upstream_failed")


def overall_state(counts: Mapping[str, int]) -> str | None:
    """The state a mapped task's instances add up to (None: no instances)."""
    present = {s for s, n in counts.items() if n}
    if not present:
        return None
    for state in _OVERALL:
        if state in present:
            return state
    return "success" if "success" in present else sorted(present)[0]


def summary(counts: Mapping[str, int]) -> str:
    """ "success 9990, running 10" for tooltips."""
    return ", ".join(f"{s} {counts[s]}" for s in STATE_ORDER if counts.get(s)) or "no instances"


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()
