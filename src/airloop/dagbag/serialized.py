"""A DAG's structure as plain JSON data: what the scheduler stores (table
``serialized_dag``) so the API server and the UI can show DAGs, groups, edges and the
trigger form without importing DAG files (which may be slow, or crash).

Nothing here runs a task: it is a description. ``dag_hash`` changes when any of it
does, so the scheduler rewrites only DAGs that changed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict

from airloop.authoring.dag import DAG
from airloop.authoring.operator import AbstractOperator
from airloop.authoring.params import Param
from airloop.authoring.taskgroup import TaskGroup

#: Bumped when the shape changes; readers reject a newer format with a clear error.
FORMAT_VERSION = 1


class SerializedParam(TypedDict):
    #: JSON Schema (2020-12) of the value; "default" is absent when the param has none.
    schema: dict[str, Any]
    description: str | None
    default: NotRequired[Any]


class SerializedTaskInfo(TypedDict):
    task_id: str
    #: The operator's class name (``PythonTaskOperator`` for ``@task``).
    operator: str
    #: The innermost task group's id, None at the top level.
    group_id: str | None
    is_mapped: bool
    is_setup: bool
    is_teardown: bool
    trigger_rule: str
    pool: str
    pool_slots: int
    retries: int
    executor: str | None
    owner: str | None
    doc: str | None
    downstream: list[str]
    template_fields: list[str]


class SerializedGroup(TypedDict):
    #: None for the root group.
    id: str | None
    tooltip: str
    #: Children in definition order: {"task_id": ...} or a nested group.
    children: list[dict[str, Any]]


class SerializedEdge(TypedDict):
    source: str
    target: str
    label: str | None


class SerializedDag(TypedDict):
    format_version: int
    dag_id: str
    fileloc: str
    description: str | None
    doc: str | None
    #: ``str(dag.schedule)`` (a cron expression, a preset, a timedelta...), None when unscheduled.
    schedule: str | None
    start_date: str | None
    end_date: str | None
    timezone: str
    catchup: bool
    max_active_runs: int
    max_active_tasks: int | None
    tags: list[str]
    owners: list[str]
    params: dict[str, SerializedParam]
    tasks: list[SerializedTaskInfo]
    task_group: SerializedGroup
    edges: list[SerializedEdge]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _schedule(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return f"every {value}"
    return str(value)


def _param(param: Param) -> SerializedParam:
    out: SerializedParam = {
        "schema": dict(param.schema),
        "description": param.description,
    }
    if not param.required:
        out["default"] = param.default
    return out


def _operator_name(task: AbstractOperator) -> str:
    factory = getattr(task, "factory", None)
    name = getattr(factory, "operator_name", None)
    return name if isinstance(name, str) else type(task).__name__


def _task(task: AbstractOperator) -> SerializedTaskInfo:
    settings = task.settings
    group = task.task_group
    return {
        "task_id": task.task_id,
        "operator": _operator_name(task),
        "group_id": None if group is None or group.is_root else group.group_id,
        "is_mapped": bool(task.is_mapped),
        "is_setup": bool(task.is_setup),
        "is_teardown": bool(task.is_teardown),
        "trigger_rule": str(settings.trigger_rule.value),
        "pool": settings.pool,
        "pool_slots": settings.pool_slots,
        "retries": settings.retries,
        "executor": settings.executor,
        "owner": task.owner,
        "doc": task.doc,
        "downstream": sorted(task.downstream_task_ids),
        "template_fields": list(task.template_fields),
    }


def _group(group: TaskGroup) -> SerializedGroup:
    described = group.describe()
    return {
        "id": described["id"],
        "tooltip": described.get("tooltip") or "",
        "children": described["children"],
    }


def serialize_dag(dag: DAG) -> SerializedDag:
    """The DAG's structure as JSON-safe data (values that are not JSON become strings)."""
    tasks = [_task(t) for t in dag.tasks]
    edges: list[SerializedEdge] = [
        {
            "source": t["task_id"],
            "target": down,
            "label": dag.get_edge_info(t["task_id"], down).get("label"),
        }
        for t in tasks
        for down in t["downstream"]
    ]
    owners = sorted({t["owner"] for t in tasks if t["owner"]})
    return {
        "format_version": FORMAT_VERSION,
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "description": dag.description,
        "doc": dag.doc,
        "schedule": _schedule(dag.schedule),
        "start_date": _iso(dag.start_date),
        "end_date": _iso(dag.end_date),
        "timezone": str(dag.timezone),
        "catchup": bool(dag.catchup),
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "tags": list(dag.tags),
        "owners": owners,
        "params": {name: _param(dag.params[name]) for name in dag.params},
        "tasks": tasks,
        "task_group": _group(dag.task_group),
        "edges": edges,
    }


def dumps(data: SerializedDag) -> tuple[str, str]:
    """The stored text and its hash (sha256 of the canonical JSON)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return text, hashlib.sha256(text.encode()).hexdigest()


def loads(text: str) -> SerializedDag:
    """Stored text back to data; a format newer than this airloop knows is an error."""
    data: SerializedDag = json.loads(text)
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"serialized DAG {data.get('dag_id')!r} has format {version}, this airloop reads "
            f"format {FORMAT_VERSION}: upgrade the API server to the scheduler's version"
        )
    return data
