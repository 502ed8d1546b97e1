"""/api/v1: changing DAGs and runs -- pause, trigger, mark, note, clear, delete (admin).

They mean what the CLI's commands mean: a trigger queues a run for the scheduler
service (``ServiceStore.queue_run``), a clear resets task instances and queues the run
again (``ServiceStore.clear``, following ExternalTaskMarkers). A run the scheduler is
driving (queued or running) is not changed under it: 409 (ADR 0039).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from airloop.api.conf_check import check_conf
from airloop.api.deps import AdminDep, StoreDep
from airloop.api.lookups import dag_or_404, run_or_404
from airloop.api.models import DagRun, DagSummary, dag_run, dag_summary
from airloop.api.params import KnownParams
from airloop.api.write_shapes import IN_FLIGHT, refuse_in_flight, request_out, ti_brief
from airloop.core.states import DagRunState, TaskState
from airloop.dagbag.serialized import SerializedDag, loads
from airloop.exceptions import AirloopError, RunExistsError
from airloop.service.markers import clear_following_markers
from airloop.store.reads import Reads
from airloop.store.records import DagRunRow, TaskInstanceRow
from airloop.store.run_changes import (
    delete_run,
    mark_run,
    mark_task_instances,
    set_note,
)
from airloop.store.run_requests import add_request
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

router = APIRouter(tags=["changes"], dependencies=[KnownParams])

_FAILED = (TaskState.FAILED, TaskState.UPSTREAM_FAILED)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DagPatch(_Body):
    is_paused: bool


class TriggerBody(_Body):
    run_id: Annotated[str | None, Field(min_length=1, max_length=250)] = None
    logical_date: datetime | None = None
    conf: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None


class RunStatePatch(_Body):
    state: Literal["success", "failed"]


class NotePatch(_Body):
    note: str | None


class ClearRunBody(_Body):
    only_failed: bool = False
    dry_run: bool = False


class ClearTasksBody(_Body):
    dag_run_id: str
    task_ids: list[str] | None = None
    map_indexes: list[int] | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    only_failed: bool = False
    dry_run: bool = False


class TaskStatePatch(_Body):
    new_state: Literal["success", "failed"]
    map_index: int | None = None
    include_downstream: bool = False
    dry_run: bool = False


# -- helpers ---------------------------------------------------------------------------


async def _dag(store: Store, dag_id: str) -> SerializedDag:
    """The DAG's structure as the scheduler stored it; 404 for a DAG it does not know."""
    record = await Reads(store).dag_record(dag_id)
    if record is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no DAG {dag_id!r} (the scheduler records DAGs when it parses their files)",
        )
    text = record.serialized
    if text is None or not record.is_active:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"DAG {dag_id!r} is not loaded by the scheduler now (its file is gone or has "
            "an import error): it cannot be changed",
        )
    try:
        return loads(text)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


def _closure(start: Iterable[str], edges: Mapping[str, list[str]]) -> set[str]:
    """``start`` and every task reachable from it along ``edges``."""
    seen = set(start)
    todo = deque(seen)
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _relatives(dag: SerializedDag, task_ids: list[str], *, up: bool, down: bool) -> list[str]:
    """``task_ids`` with (transitively) their upstream and/or downstream tasks, in the
    DAG's order; 400 naming a task the DAG does not have."""
    order = [t["task_id"] for t in dag["tasks"]]
    unknown = [t for t in task_ids if t not in order]
    if unknown:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"DAG {dag['dag_id']!r} has no task {unknown[0]!r}",
        )
    downstream: dict[str, list[str]] = {}
    upstream: dict[str, list[str]] = {}
    for edge in dag["edges"]:
        downstream.setdefault(edge["source"], []).append(edge["target"])
        upstream.setdefault(edge["target"], []).append(edge["source"])
    chosen = set(task_ids)
    if down:
        chosen |= _closure(task_ids, downstream)
    if up:
        chosen |= _closure(task_ids, upstream)
    return [t for t in order if t in chosen]


def _chosen(
    tis: list[TaskInstanceRow],
    task_ids: list[str] | None,
    only_failed: bool,
    map_indexes: list[int] | None,
) -> list[TaskInstanceRow]:
    return [
        ti
        for ti in tis
        if (task_ids is None or ti.task_id in task_ids)
        and (not only_failed or ti.state in _FAILED)
        and (map_indexes is None or ti.map_index in map_indexes)
    ]


async def _clear(
    store: Store,
    run: DagRunRow,
    task_ids: list[str] | None,
    only_failed: bool,
    map_indexes: list[int] | None,
    dry_run: bool,
) -> dict[str, Any]:
    targets = _chosen(await store.task_instances(run.id), task_ids, only_failed, map_indexes)
    out: dict[str, Any] = {"task_instances": [ti_brief(run, ti) for ti in targets]}
    if dry_run:
        return out
    refuse_in_flight(run, "clear")
    try:
        done = await clear_following_markers(
            ServiceStore(store), run, task_ids, only_failed, map_indexes
        )
    except RunExistsError as exc:  # became queued or running meanwhile
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AirloopError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    out["notes"] = done.notes
    out["cleared"] = [
        {"dag_id": dag_id, "run_id": run_id, "count": count}
        for (dag_id, run_id), count in done.counts.items()
    ]
    return out


# -- routes ----------------------------------------------------------------------------


@router.patch("/dags/{dag_id}")
async def patch_dag(dag_id: str, body: DagPatch, store: StoreDep, user: AdminDep) -> DagSummary:
    """Pause or unpause a DAG (as ``airloop dags pause|unpause``)."""
    if not await ServiceStore(store).set_paused(dag_id, body.is_paused):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no DAG {dag_id!r} (the scheduler records DAGs when it parses their files)",
        )
    return dag_summary(await dag_or_404(Reads(store), dag_id))


@router.post(
    "/dags/{dag_id}/dagRuns",
    status_code=status.HTTP_201_CREATED,
    response_model=DagRun,
    responses={400: {"description": "conf does not fit the params: detail and errors"}},
)
async def trigger(
    dag_id: str, body: TriggerBody, store: StoreDep, user: AdminDep
) -> DagRun | JSONResponse:
    """Queue a run (as ``airloop dags trigger``); the scheduler service starts it."""
    dag = await _dag(store, dag_id)
    params, errors = check_conf(dag["params"], body.conf)
    if errors:
        first = next(iter(errors))
        return JSONResponse(
            {
                "detail": f"conf does not fit DAG {dag_id!r}'s params: {first}: {errors[first]}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
                "errors": errors,
            },
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    when = body.logical_date or datetime.now(UTC)
    if when.tzinfo is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"logical_date {when.isoformat()} has no time zone (add +00:00 for UTC)",
        )
    when = when.astimezone(UTC)
    run_id = body.run_id or f"manual__{when.isoformat()}"
    service = ServiceStore(store)
    try:
        run_pk = await service.queue_run(dag_id, run_id, params, when)
    except RunExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if body.note is not None:
        await set_note(store, run_pk, body.note)
    run = await store.get_run(run_pk)
    assert run is not None
    return dag_run(run)


@router.patch(
    "/dags/{dag_id}/dagRuns/{run_id}",
    response_model=DagRun,
    responses={202: {"description": "a run in flight: the DagRun and the request"}},
)
async def mark(
    dag_id: str, run_id: str, body: RunStatePatch, store: StoreDep, user: AdminDep
) -> DagRun | JSONResponse:
    """Mark a run success or failed (its task instances follow). A finished run is
    marked at once (200). A run in flight is marked by the scheduler (202, with the
    request): it stops the run (cancelling what runs) and then marks it."""
    run = await run_or_404(Reads(store), dag_id, run_id)
    state = DagRunState(body.state)
    if run.state in IN_FLIGHT:
        asked = await add_request(store, run.id, f"mark_{state.value}", user.username)
        return JSONResponse(
            {**dag_run(run).model_dump(mode="json"), "request": request_out(asked)},
            status_code=status.HTTP_202_ACCEPTED,
        )
    await mark_run(store, run.id, state)
    changed = await store.get_run(run.id)
    assert changed is not None
    return dag_run(changed)


@router.patch("/dags/{dag_id}/dagRuns/{run_id}/note")
async def note(
    dag_id: str, run_id: str, body: NotePatch, store: StoreDep, user: AdminDep
) -> DagRun:
    """Set (or with null remove) a run's note; any run, in flight or not."""
    run = await run_or_404(Reads(store), dag_id, run_id)
    await set_note(store, run.id, body.note)
    changed = await store.get_run(run.id)
    assert changed is not None
    return dag_run(changed)


@router.post("/dags/{dag_id}/dagRuns/{run_id}/clear")
async def clear_run(
    dag_id: str,
    run_id: str,
    body: ClearRunBody,
    store: StoreDep,
    user: AdminDep,
) -> dict[str, Any]:
    """Clear a whole finished run (or only its failed task instances): it runs again."""
    run = await run_or_404(Reads(store), dag_id, run_id)
    return await _clear(store, run, None, body.only_failed, None, body.dry_run)


@router.delete("/dags/{dag_id}/dagRuns/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(dag_id: str, run_id: str, store: StoreDep, user: AdminDep) -> Response:
    """Delete a finished run and what is recorded of it (its log files stay)."""
    run = await run_or_404(Reads(store), dag_id, run_id)
    refuse_in_flight(run, "delete")
    await delete_run(store, run.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/dags/{dag_id}/clearTaskInstances")
async def clear_task_instances(
    dag_id: str, body: ClearTasksBody, store: StoreDep, user: AdminDep
) -> dict[str, Any]:
    """Clear some task instances of a finished run (and their upstream/downstream)."""
    dag = await _dag(store, dag_id)
    run = await run_or_404(Reads(store), dag_id, body.dag_run_id)
    task_ids = body.task_ids
    if task_ids is not None:
        if not task_ids:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "task_ids is empty: name the tasks to clear, or leave task_ids out for all",
            )
        task_ids = _relatives(dag, task_ids, up=body.include_upstream, down=body.include_downstream)
    elif body.include_upstream or body.include_downstream:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "include_upstream/include_downstream need task_ids (without them every task "
            "is cleared)",
        )
    return await _clear(store, run, task_ids, body.only_failed, body.map_indexes, body.dry_run)


@router.patch("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
async def mark_task_instance(
    dag_id: str,
    run_id: str,
    task_id: str,
    body: TaskStatePatch,
    store: StoreDep,
    user: AdminDep,
) -> dict[str, Any]:
    """Mark a task's instances (one map index, or all) of a finished run success or
    failed, with their downstream if asked; the run is queued again so the scheduler
    service settles it (and runs what the change made runnable)."""
    dag = await _dag(store, dag_id)
    run = await run_or_404(Reads(store), dag_id, run_id)
    task_ids = _relatives(dag, [task_id], up=False, down=body.include_downstream)
    tis = await store.task_instances(run.id)
    targets = [
        ti
        for ti in tis
        if ti.task_id in task_ids
        and (body.map_index is None or ti.task_id != task_id or ti.map_index == body.map_index)
    ]
    if body.map_index is not None and not any(ti.task_id == task_id for ti in targets):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"run {run_id!r} of DAG {dag_id!r} has no instance of task {task_id!r} "
            f"with map_index {body.map_index}",
        )
    out = {"task_instances": [ti_brief(run, ti) for ti in targets]}
    if body.dry_run:
        return out
    refuse_in_flight(run, "mark task instances of")
    new_state = TaskState(body.new_state)
    await mark_task_instances(
        store, run.id, [(ti.task_id, ti.map_index) for ti in targets], new_state
    )
    return out
