"""Changes to runs made from outside the scheduler (the HTTP API): a run's note, its
state marked by hand, task instances marked, a run deleted (the DAG and its structure
are read through ``store.reads``). The callers refuse to change a run the
scheduler is driving (queued or running): see ADR 0039."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, update

from airloop.core.states import DagRunState, TaskState
from airloop.store.errors import begin
from airloop.store.notify import notify_run
from airloop.store.runs import Store, utcnow
from airloop.store.schema import (
    dag_run,
    rendered_task_instance_fields,
    run_request,
    task_instance,
    task_log,
    xcom,
)

#: Task instances that have not finished: a run marked failed fails the started ones
#: and skips the rest; marked success, every one that did not succeed succeeds.
_STARTED = [
    s.value
    for s in (TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY)
]


async def set_note(store: Store, run_pk: int, note: str | None) -> None:
    async with begin(store.engine) as conn:
        await conn.execute(update(dag_run).where(dag_run.c.id == run_pk).values(note=note))
    store.events.changed(run_pks=(run_pk,))


async def mark_run(store: Store, run_pk: int, state: DagRunState) -> None:
    """Set a finished run's state by hand, and its task instances to match: marked
    success, each one that did not succeed succeeds; marked failed, the started ones
    fail and those not started are skipped."""
    ti = task_instance.c
    now = utcnow()
    async with begin(store.engine) as conn:
        if state is DagRunState.SUCCESS:
            await conn.execute(
                update(task_instance)
                .where(and_(ti.dag_run_id == run_pk, ti.state != TaskState.SUCCESS.value))
                .values(state=TaskState.SUCCESS.value, end_date=now, error=None, updated_at=now)
            )
        else:
            await conn.execute(
                update(task_instance)
                .where(and_(ti.dag_run_id == run_pk, ti.state.in_(_STARTED)))
                .values(state=TaskState.FAILED.value, end_date=now, updated_at=now)
            )
            await conn.execute(
                update(task_instance)
                .where(and_(ti.dag_run_id == run_pk, ti.state == TaskState.NONE.value))
                .values(state=TaskState.SKIPPED.value, end_date=now, updated_at=now)
            )
        await conn.execute(
            update(dag_run).where(dag_run.c.id == run_pk).values(state=state.value, end_date=now)
        )
    store.events.changed(run_pks=(run_pk,))


async def mark_task_instances(
    store: Store, run_pk: int, keys: Sequence[tuple[str, int]], state: TaskState
) -> None:
    """Set the task instances ``(task_id, map_index)`` of a finished run to ``state``
    and queue the run: the scheduler service resumes it, starts what the change made
    runnable (downstream tasks not yet run) and settles the run's state."""
    if not keys:
        return
    ti = task_instance.c
    now = utcnow()
    by_task: dict[str, list[int]] = {}
    for task_id, map_index in keys:
        by_task.setdefault(task_id, []).append(map_index)
    async with begin(store.engine) as conn:
        for task_id, indexes in by_task.items():
            for start in range(0, len(indexes), 500):
                await conn.execute(
                    update(task_instance)
                    .where(
                        and_(
                            ti.dag_run_id == run_pk,
                            ti.task_id == task_id,
                            ti.map_index.in_(indexes[start : start + 500]),
                        )
                    )
                    .values(state=state.value, end_date=now, updated_at=now)
                )
        await conn.execute(
            update(dag_run)
            .where(dag_run.c.id == run_pk)
            .values(state=DagRunState.QUEUED.value, end_date=None)
        )
        await notify_run(conn, "queued", run_pk)
    store.events.queued.set()
    store.events.changed(run_pks=(run_pk,))


async def delete_run(store: Store, run_pk: int) -> None:
    """The run and everything recorded of it (task instances, XComs, log paths,
    rendered fields; the log files stay on disk)."""
    async with begin(store.engine) as conn:
        for table in (xcom, task_log, rendered_task_instance_fields, task_instance, run_request):
            await conn.execute(delete(table).where(table.c.dag_run_id == run_pk))
        await conn.execute(delete(dag_run).where(dag_run.c.id == run_pk))
    store.events.changed(run_pks=(run_pk,))


__all__ = [
    "delete_run",
    "mark_run",
    "mark_task_instances",
    "set_note",
]
