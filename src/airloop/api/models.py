"""The API's response shapes (the OpenAPI document is generated from these) and how
the store's records become them. Secrets are masked on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, PlainSerializer

from airloop.api.next_run import next_run
from airloop.core.masking import redact
from airloop.dagbag.serialized import SerializedDag, loads
from airloop.store.read_records import (
    DagOverview,
    DagRecord,
    GridCell,
    RunBrief,
    TaskInstanceRecord,
)
from airloop.store.records import DagRunRow

T = TypeVar("T")

#: Times go out as ISO 8601 with the offset: "2026-12-02T04:30:00+00:00".
Time = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]


class ListOf(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int = Field(description="How many items match, over all pages.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page (keyset lists); null: last."
    )


# -- DAGs and runs ----------------------------------------------------------------------


class DagRunBrief(BaseModel):
    run_id: str
    state: str
    run_type: str
    logical_date: Time | None
    start_date: Time | None
    end_date: Time | None


class DagRun(BaseModel):
    run_id: str
    dag_id: str
    state: str
    run_type: str
    logical_date: Time | None
    data_interval_start: Time | None
    data_interval_end: Time | None
    start_date: Time | None
    end_date: Time | None
    created_at: Time
    note: str | None
    conf: dict[str, Any] = Field(description="The run's params (masked).")


class DagSummary(BaseModel):
    dag_id: str
    fileloc: str
    is_paused: bool
    is_active: bool
    schedule: str | None
    next_run: Time | None = Field(
        description="Logical date of the next scheduled run (null: paused or unscheduled)."
    )
    tags: list[str]
    owners: list[str]
    description: str | None
    last_runs: list[DagRunBrief] = Field(description="Newest first, at most 10.")
    running_runs: int
    failed_runs: int


class DagDetail(DagSummary):
    doc: str | None
    catchup: bool | None
    max_active_runs: int | None
    max_active_tasks: int | None
    start_date: Time | None
    end_date: Time | None
    timezone: str | None
    params: dict[str, dict[str, Any]] = Field(
        description='name -> {"schema": JSON Schema, "description", "default" (absent: required)}'
    )


class DagStructure(BaseModel):
    tasks: list[dict[str, Any]]
    task_group: dict[str, Any]
    edges: list[dict[str, Any]]


class DagSource(BaseModel):
    fileloc: str
    content: str


class GridTask(BaseModel):
    task_id: str
    group_id: str | None
    is_mapped: bool
    operator: str


class GridCellOut(BaseModel):
    run_id: str
    task_id: str
    counts: dict[str, int] = Field(description="Instances per state.")
    total: int


class GridOut(BaseModel):
    runs: list[DagRun] = Field(description="Oldest first.")
    tasks: list[GridTask] = Field(description="In the DAG's structure order.")
    cells: list[GridCellOut]


# -- task instances ---------------------------------------------------------------------


class TaskInstance(BaseModel):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    rendered_map_index: str | None
    state: str
    try_number: int
    max_tries: int
    queued_at: Time | None
    start_date: Time | None
    end_date: Time | None
    duration: float | None
    pool: str
    pool_slots: int
    priority_weight: int
    executor: str | None
    hostname: str | None
    operator: str | None
    error: str | None
    checkpoint: Any = Field(description="The operator's durable checkpoint (masked).")
    updated_at: Time | None


class TryInfo(BaseModel):
    try_number: int
    log_size: int | None = Field(description="Bytes in the try's log file (null: no file).")
    path_exists: bool


class XComOut(BaseModel):
    key: str
    value: Any = Field(description="The value (masked JSON).")
    size: int


class RenderedFields(BaseModel):
    try_number: int
    fields: dict[str, Any]


class LogChunk(BaseModel):
    content: str = Field(description="The log text (masked).")
    offset: int = Field(description="Byte offset of content's start.")
    next_offset: int = Field(description="Byte offset after content (pass as offset).")
    size: int = Field(description="The file's size in bytes.")
    running: bool = Field(description="The try is still running (the log may grow).")


# -- monitoring -------------------------------------------------------------------------


class DatabaseHealth(BaseModel):
    status: str
    error: str | None


class SchedulerHealth(BaseModel):
    status: str = Field(description="healthy, unhealthy, or unknown (no heartbeat yet).")
    latest_heartbeat: Time | None
    hostname: str | None
    pid: int | None
    loop_lag: float | None
    running_tasks: int | None
    active_runs: int | None


class LiveScheduler(BaseModel):
    """A scheduler alive now (several may share the database: ADR 0041)."""

    id: int = Field(description="Its row in the scheduler registry.")
    hostname: str | None
    pid: int | None
    mode: str | None = Field(description="ha (DAG leases) or single (the one-scheduler lock).")
    latest_heartbeat: Time
    heartbeat_age: float = Field(description="Seconds since it beat, on the database's clock.")
    dags_owned: int | None = Field(description="DAGs it holds the lease of.")
    loop_lag: float | None
    running_tasks: int | None
    active_runs: int | None


class Health(BaseModel):
    database: DatabaseHealth
    scheduler: SchedulerHealth = Field(
        description="The newest live scheduler (else the newest that ever beat)."
    )
    schedulers: list[LiveScheduler] = Field(
        default_factory=list, description="Every live scheduler, oldest first."
    )


class Version(BaseModel):
    version: str


class ImportErrorOut(BaseModel):
    fileloc: str
    line: int | None
    message: str
    traceback: str | None


# -- from records -----------------------------------------------------------------------


def dag_run_brief(run: RunBrief | DagRunRow) -> DagRunBrief:
    return DagRunBrief(
        run_id=run.run_id,
        state=run.state.value,
        run_type=run.run_type,
        logical_date=run.logical_date,
        start_date=run.start_date,
        end_date=run.end_date,
    )


def dag_run(run: DagRunRow) -> DagRun:
    return DagRun(
        run_id=run.run_id,
        dag_id=run.dag_id,
        state=run.state.value,
        run_type=run.run_type,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        start_date=run.start_date,
        end_date=run.end_date,
        created_at=run.created_at,
        note=run.note,
        conf=redact(run.params) if isinstance(run.params, dict) else {},
    )


def grid_cell(run_id: str, cell: GridCell) -> GridCellOut:
    return GridCellOut(run_id=run_id, task_id=cell.task_id, counts=cell.counts, total=cell.total)


def serialized_of(dag: DagOverview | DagRecord) -> SerializedDag | None:
    """The DAG's stored structure (None before the scheduler stored one, or in a
    format this server cannot read)."""
    text = (dag.dag if isinstance(dag, DagOverview) else dag).serialized
    if text is None:
        return None
    try:
        return loads(text)
    except ValueError:
        return None


def _summary_fields(overview: DagOverview, data: SerializedDag | None) -> dict[str, Any]:
    dag = overview.dag
    return {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "is_paused": dag.is_paused,
        "is_active": dag.is_active,
        "schedule": dag.schedule,
        "next_run": next_run(
            data, is_paused=dag.is_paused, last_interval_end=overview.last_interval_end
        ),
        "tags": list(data["tags"]) if data else [],
        "owners": list(data["owners"]) if data else [],
        "description": data["description"] if data else None,
        "last_runs": [dag_run_brief(r) for r in overview.last_runs],
        "running_runs": overview.running_runs,
        "failed_runs": overview.failed_runs,
    }


def dag_summary(overview: DagOverview) -> DagSummary:
    return DagSummary(**_summary_fields(overview, serialized_of(overview)))


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def dag_detail(overview: DagOverview) -> DagDetail:
    data = serialized_of(overview)
    params: dict[str, dict[str, Any]] = {}
    for name, param in (data["params"] if data else {}).items():
        params[name] = dict(param)
        if "default" in param:
            params[name]["default"] = redact(param["default"], name)
    return DagDetail(
        **_summary_fields(overview, data),
        doc=data["doc"] if data else None,
        catchup=data["catchup"] if data else None,
        max_active_runs=data["max_active_runs"] if data else None,
        max_active_tasks=data["max_active_tasks"] if data else None,
        start_date=_time(data["start_date"]) if data else None,
        end_date=_time(data["end_date"]) if data else None,
        timezone=data["timezone"] if data else None,
        params=params,
    )


def task_instance(record: TaskInstanceRecord) -> TaskInstance:
    ti = record.ti
    return TaskInstance(
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        rendered_map_index=ti.rendered_map_index,
        state=ti.state.value,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        queued_at=ti.queued_at,
        start_date=ti.start_date,
        end_date=ti.end_date,
        duration=ti.duration,
        pool=ti.pool,
        pool_slots=ti.pool_slots,
        priority_weight=ti.priority_weight,
        executor=ti.executor,
        hostname=ti.hostname,
        operator=ti.operator,
        error=None if ti.error is None else redact(ti.error),
        checkpoint=None if ti.checkpoint is None else redact(ti.checkpoint),
        updated_at=ti.updated_at,
    )
