"""What the store takes and what it gives back: frozen records, no SQLAlchemy types.

The engine and the service speak only these; column and bind-parameter names, SQL
and driver errors stay inside the store (ADR 0020).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airloop.core.states import DagRunState, TaskState

# -- written ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewTaskInstance:
    """A task_instance row a new run starts with (state ``none``, try 0)."""

    task_id: str
    pool: str
    pool_slots: int
    priority_weight: int
    max_tries: int
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class TIUpdate:
    """A task instance's columns as the scheduler last set them."""

    run_pk: int
    task_id: str
    map_index: int
    state: TaskState
    try_number: int
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None
    hostname: str | None = None
    executor: str | None = None
    next_retry_at: datetime | None = None
    error: str | None = None
    rendered_map_index: str | None = None
    #: Set when this write starts a try: the try_number the row must have for the
    #: start to be this writer's (``n - 1`` for a new try ``n``, ``n`` for a try resumed
    #: under its number). None: the row is written whatever it holds.
    guard: int | None = None


@dataclass(frozen=True, slots=True)
class Expansion:
    """A mapped task's placeholder row (map index -1) becomes ``count`` rows (0..count-1)."""

    run_pk: int
    task_id: str
    count: int


@dataclass(frozen=True, slots=True)
class XComRow:
    """One XCom: ``value`` is JSON text (its size is checked before it gets here)."""

    run_pk: int
    task_id: str
    map_index: int
    key: str
    value: str

    @property
    def size(self) -> int:
        """What the ``size`` column holds (the value is ASCII JSON: characters = bytes)."""
        return len(self.value)


@dataclass(frozen=True, slots=True)
class LogRow:
    """Where one try of a task instance writes its log."""

    run_pk: int
    task_id: str
    map_index: int
    try_number: int
    path: str


@dataclass(frozen=True, slots=True)
class RenderedRow:
    """What one try's template fields rendered to: JSON text of ``{field: value}``."""

    run_pk: int
    task_id: str
    map_index: int
    try_number: int
    fields: str


@dataclass(frozen=True, slots=True)
class RunUpdate:
    """A run that ended."""

    run_pk: int
    state: DagRunState
    end_date: datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A task instance's durable checkpoint (``{"try_number": n, "value": ...}``)."""

    run_pk: int
    task_id: str
    map_index: int
    checkpoint: dict[str, Any]


@dataclass(slots=True)
class WriteBatch:
    """Everything one scheduler tick changes, written in one transaction."""

    expansions: list[Expansion] = field(default_factory=list)
    ti_updates: list[TIUpdate] = field(default_factory=list)
    xcoms: list[XComRow] = field(default_factory=list)
    logs: list[LogRow] = field(default_factory=list)
    run_updates: list[RunUpdate] = field(default_factory=list)
    rendered: list[RenderedRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.expansions
            or self.ti_updates
            or self.xcoms
            or self.logs
            or self.run_updates
            or self.rendered
        )

    def __len__(self) -> int:
        return (
            len(self.expansions)
            + len(self.ti_updates)
            + len(self.xcoms)
            + len(self.logs)
            + len(self.run_updates)
            + len(self.rendered)
        )

    def without(self, run_pks: set[int]) -> WriteBatch:
        """The batch minus every row about the runs ``run_pks`` (a fenced write)."""
        return WriteBatch(
            [r for r in self.expansions if r.run_pk not in run_pks],
            [r for r in self.ti_updates if r.run_pk not in run_pks],
            [r for r in self.xcoms if r.run_pk not in run_pks],
            [r for r in self.logs if r.run_pk not in run_pks],
            [r for r in self.run_updates if r.run_pk not in run_pks],
            [r for r in self.rendered if r.run_pk not in run_pks],
        )

    def run_pks(self) -> set[int]:
        return {
            r.run_pk
            for rows in (
                self.expansions,
                self.ti_updates,
                self.xcoms,
                self.logs,
                self.run_updates,
                self.rendered,
            )
            for r in rows
        }


@dataclass(frozen=True, slots=True)
class RefusedStart:
    """A start a batch did not write: the row had moved on (another scheduler started
    or changed it) since this writer last saw it."""

    run_pk: int
    task_id: str
    map_index: int
    #: The try this write meant to start.
    try_number: int
    #: What the row held instead (None, None: there is no such row).
    found_try_number: int | None
    found_state: TaskState | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What ``Store.write`` did not write (both empty normally): its refused starts,
    and the runs whose DAG lease had moved (fenced out; ADR 0041)."""

    refused: tuple[RefusedStart, ...] = ()
    stale_runs: frozenset[int] = frozenset()

    @property
    def refused_keys(self) -> set[tuple[int, str, int]]:
        """(run_pk, task_id, map_index) of each refused start."""
        return {(r.run_pk, r.task_id, r.map_index) for r in self.refused}

    @property
    def refused_runs(self) -> set[int]:
        return {r.run_pk for r in self.refused}


# -- read ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DagRunRow:
    id: int
    dag_id: str
    run_id: str
    run_type: str
    state: DagRunState
    #: None: a run created without one (the library API, as Airflow 3).
    logical_date: datetime | None
    params: dict[str, Any]
    created_at: datetime
    start_date: datetime | None
    end_date: datetime | None
    note: str | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None

    @property
    def data_interval(self) -> tuple[datetime, datetime] | None:
        if self.data_interval_start is None or self.data_interval_end is None:
            return None
        return self.data_interval_start, self.data_interval_end


@dataclass(frozen=True, slots=True)
class TaskInstanceRow:
    id: int
    dag_run_id: int
    task_id: str
    map_index: int
    state: TaskState
    try_number: int
    max_tries: int
    pool: str
    pool_slots: int
    priority_weight: int
    operator: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    hostname: str | None
    executor: str | None
    next_retry_at: datetime | None
    error: str | None
    checkpoint: dict[str, Any] | None
    updated_at: datetime | None
    #: A mapped instance's label (map_index_template), when it has one.
    rendered_map_index: str | None = None


@dataclass(frozen=True, slots=True)
class ImportErrorRow:
    """A DAG file that could not be loaded."""

    fileloc: str
    line: int | None
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatRow:
    id: int
    hostname: str
    pid: int
    state: str
    started_at: datetime
    heartbeat_at: datetime
    loop_lag: float | None
    running_tasks: int | None
    active_runs: int | None
    expires_at: datetime | None = None
    dags_owned: int | None = None
    mode: str | None = None


__all__ = [
    "CheckpointRow",
    "DagRunRow",
    "Expansion",
    "HeartbeatRow",
    "ImportErrorRow",
    "LogRow",
    "NewTaskInstance",
    "RefusedStart",
    "RenderedRow",
    "RunUpdate",
    "TIUpdate",
    "TaskInstanceRow",
    "WriteBatch",
    "WriteResult",
    "XComRow",
]


# -- connections and variables (secrets stored as the connections layer encrypted them) --


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """A connection row. ``password`` and ``extra`` are ciphertext when the flags say so."""

    conn_id: str
    conn_type: str | None = None
    description: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    extra: str | None = field(default=None, repr=False)
    is_encrypted: bool = False
    is_extra_encrypted: bool = False


@dataclass(frozen=True, slots=True)
class VariableRecord:
    """A variable row. ``val`` is ciphertext when ``is_encrypted``."""

    key: str
    val: str | None = field(default=None, repr=False)
    description: str | None = None
    is_encrypted: bool = False
