"""Runs for the read tests, written with the store's own write functions (the
scheduler's batches), and DAGs recorded as the scheduler's sync records them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.params import Param
from airloop.authoring.taskgroup import TaskGroup
from airloop.core.states import DagRunState, TaskState
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.store.records import (
    Expansion,
    LogRow,
    NewTaskInstance,
    RunUpdate,
    TIUpdate,
    WriteBatch,
    XComRow,
)
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def mapped_dag(dag_id: str = "mapped", *, tags: list[str] | None = None, **kwargs: object) -> DAG:
    """numbers >> group.double (mapped) >> total."""
    with DAG(
        dag_id,
        schedule=kwargs.pop("schedule", "@daily"),
        start_date=T0,
        params={"n": Param(3, minimum=1), "token": Param("s3cret-value", type="string")},
        tags=tags or ["team"],
        default_args={"owner": "ops"},
        description="doubles numbers",
        **kwargs,  # type: ignore[arg-type]
    ) as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        listed = numbers()
        with TaskGroup("group"):
            doubled = double.expand(x=listed)
        total(doubled)
    return dag


async def register(store: Store, *dags: DAG, fileloc: str | None = None) -> None:
    """Record DAGs (and their structure) as the scheduler's sync does."""
    serialized = {}
    found = {}
    for dag in dags:
        text, digest = dumps(serialize_dag(dag))
        serialized[dag.dag_id] = (text, digest)
        schedule = None if dag.schedule is None else str(dag.schedule)
        found[dag.dag_id] = (fileloc or dag.fileloc, schedule)
    await ServiceStore(store).sync_dags(found, [], serialized)


async def mapped_run(
    store: Store,
    dag_id: str = "mapped",
    *,
    day: int = 0,
    states: list[TaskState] | None = None,
    run_state: DagRunState | None = DagRunState.SUCCESS,
    run_type: str = "scheduled",
) -> int:
    """A run of ``mapped_dag``: numbers ran, ``double`` expanded to len(states)
    instances in those states (default three successes), total waiting."""
    states = states if states is not None else [TaskState.SUCCESS] * 3
    logical = T0 + timedelta(days=day)
    pk = await store.create_run(
        dag_id=dag_id,
        run_id=f"{run_type}__{logical.isoformat()}",
        run_type=run_type,
        logical_date=logical,
        params={"n": 3, "token": "s3cret-value"},
        task_instances=[
            NewTaskInstance("numbers", "default_pool", 1, 1, 1, "PythonTaskOperator"),
            NewTaskInstance("group.double", "default_pool", 1, 1, 1, "PythonTaskOperator"),
            NewTaskInstance("total", "default_pool", 1, 1, 1, "PythonTaskOperator"),
        ],
        data_interval=(logical, logical + timedelta(days=1)),
    )
    start = logical + timedelta(days=1)
    batch = WriteBatch()
    batch.ti_updates.append(
        TIUpdate(
            pk,
            "numbers",
            -1,
            TaskState.SUCCESS,
            1,
            start_date=start,
            end_date=start + timedelta(seconds=1),
            duration=1.0,
        )
    )
    batch.xcoms.append(XComRow(pk, "numbers", -1, "return_value", "[1, 2, 3]"))
    await store.write(batch)
    if states:
        await store.write(WriteBatch(expansions=[Expansion(pk, "group.double", len(states))]))
        batch = WriteBatch()
        for i, state in enumerate(states):
            batch.ti_updates.append(
                TIUpdate(
                    pk,
                    "group.double",
                    i,
                    state,
                    1,
                    start_date=start + timedelta(seconds=i),
                    duration=float(i) + 0.5,
                )
            )
        await store.write(batch)
    if run_state is not None and run_state != DagRunState.RUNNING:
        await store.write(
            WriteBatch(run_updates=[RunUpdate(pk, run_state, start + timedelta(minutes=1))])
        )
    return pk


async def write_log(
    store: Store,
    folder: Path,
    run_pk: int,
    task_id: str,
    map_index: int,
    try_number: int,
    text: str,
) -> Path:
    """A try's log file in ``folder`` (the tests' logs folder: ``<home>/logs``) with its
    task_log row."""
    path = folder / f"{task_id}.{map_index}.{try_number}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    await store.write(WriteBatch(logs=[LogRow(run_pk, task_id, map_index, try_number, str(path))]))
    return path
