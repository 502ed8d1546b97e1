"""What the planner decides (a Plan of changes, expansions, starts and cancels) and what it is restored from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from airloop.core.specs import TIKey
from airloop.core.states import DagRunState, TaskState

# -- decisions ----------------------------------------------------------------------


class Change(NamedTuple):
    """One task instance's state change.

    A named tuple, not a frozen dataclass: the planner makes one per transition (four
    per task instance), and a frozen dataclass's ``__init__`` sets each of its seven
    fields through ``object.__setattr__`` (ADR 0042). Equality leaves out
    ``stimulus_id``, as the dataclass's did."""

    key: TIKey
    old: TaskState
    new: TaskState
    try_number: int
    reason: str | None = None
    next_retry_at: float | None = None
    #: The report or decision that caused it (see the events above). Not compared.
    stimulus_id: str = ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self[:6] == other[:6]

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self[:6] != other[:6]

    def __hash__(self) -> int:
        return hash(self[:6])


@dataclass(frozen=True, slots=True)
class Expansion:
    """A mapped task's placeholder (map index -1) becomes ``count`` task instances."""

    task_id: str
    count: int


@dataclass(slots=True)
class Plan:
    expansions: list[Expansion] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    to_start: list[TIKey] = field(default_factory=list)
    run_state: DagRunState | None = None
    wake_at: float | None = None
    #: Task instances to cancel in their executor (a stop or an abort began).
    to_cancel: list[TIKey] = field(default_factory=list)
    #: The run is left unfinished on purpose, for the next start (a keeping stop).
    kept: bool = False
    #: Task instances held at ``none`` by their ``depends_on_past`` gate: the engine
    #: finds out when it is met and says so (``PastGateMet``).
    gated: list[TIKey] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.expansions
            or self.changes
            or self.to_start
            or self.run_state
            or self.to_cancel
            or self.kept
            or self.gated
        )


@dataclass(frozen=True, slots=True)
class StoredTI:
    """A task instance as the store last recorded it, for ``RunPlanner.restore``."""

    key: TIKey
    state: TaskState
    try_number: int
    next_retry_at: float | None = None
    #: May this try be started again? (It saved a checkpoint, or its operator can find
    #: its external work by name.) Otherwise a try lost while running fails.
    resumable: bool = False


class PlanningError(ValueError):
    """The specs given to the planner are inconsistent (a bug in the caller or a bad DAG)."""
