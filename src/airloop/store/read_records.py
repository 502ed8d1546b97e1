"""What the API's reads give back (airloop.store.reads): frozen records, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from airloop.core.states import DagRunState
from airloop.store.records import DagRunRow, TaskInstanceRow

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items, how many match in all, and (keyset lists) the
    cursor of the next page (None: this is the last)."""

    items: list[T]
    total: int
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class DagRecord:
    """A row of the ``dag`` table with its serialized structure (JSON text of
    ``airloop.dagbag.serialized.SerializedDag``; None until the scheduler stored one)."""

    dag_id: str
    fileloc: str
    is_paused: bool
    is_active: bool
    schedule: str | None
    last_parsed: datetime | None
    serialized: str | None


@dataclass(frozen=True, slots=True)
class RunBrief:
    """A run as the DAG list draws it (one status circle): the columns it needs, not
    the run's conf."""

    dag_id: str
    run_id: str
    state: DagRunState
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None


@dataclass(frozen=True, slots=True)
class DagOverview:
    """A DAG as the DAG list shows it: the row, its newest runs (at most 10, newest
    first), how many runs are running and failed, and the end of its last scheduled
    interval (for the next run)."""

    dag: DagRecord
    last_runs: list[RunBrief]
    running_runs: int
    failed_runs: int
    last_interval_end: datetime | None


@dataclass(frozen=True, slots=True)
class GridCell:
    """How many instances of a task in a run are in each state."""

    run_pk: int
    task_id: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Grid:
    """A page of a DAG's runs (oldest first) and the state counts of their tasks."""

    runs: list[DagRunRow]
    cells: list[GridCell]


@dataclass(frozen=True, slots=True)
class TaskInstanceRecord:
    """A task instance with the ids of its run (for lists across runs)."""

    dag_id: str
    run_id: str
    ti: TaskInstanceRow


@dataclass(frozen=True, slots=True)
class XComEntry:
    key: str
    value: str  # JSON text
    size: int


@dataclass(frozen=True, slots=True)
class LogFile:
    """Where one try's log was written."""

    try_number: int
    path: str


@dataclass(frozen=True, slots=True)
class TaskInstanceFilter:
    """What a task instance list asks for (None: any)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    state: str | None = None
    map_index: int | None = None
    start_date_gte: datetime | None = None
    start_date_lte: datetime | None = None
