"""Cross-DAG operators under a bare Engine (no scheduler service in this process): the
sensor polls the store, the trigger queues a run for a scheduler to start (ADR 0036).

Both CI passes run this file: on the thread executor the waits run on a loop of their
own and use a store of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airloop import DAG, DagRunState, TaskGroup, task
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.exceptions import SkipTask
from airloop.operators import TriggerDagRunOperator
from airloop.sensors import ExternalTaskSensor
from airloop.store.service import ServiceStore

from .support import ti_rows, ti_states

L = datetime(2026, 2, 1, tzinfo=UTC)


def producer() -> DAG:
    with DAG("d") as dag:

        @task
        def a() -> int:
            return 1

        @task
        def s() -> None:
            raise SkipTask("nothing to do")

        with TaskGroup("g"):

            @task
            def x() -> int:
                return 1

            @task
            def y() -> int:
                return 2

            x() >> y()
        a()
        s()
    return dag


async def test_the_sensor_matches_tasks_groups_runs_and_dates(engine: Engine) -> None:
    done = await engine.run(producer(), logical_date=L)
    assert done.state is DagRunState.SUCCESS, done.failed
    quick = {"poke_interval": 0.05, "timeout": 30}
    with DAG("c") as same_date:
        ExternalTaskSensor(task_id="run", external_dag_id="d", **quick)
        ExternalTaskSensor(task_id="task", external_dag_id="d", external_task_id="a", **quick)
        ExternalTaskSensor(
            task_id="group", external_dag_id="d", external_task_group_id="g", **quick
        )
        ExternalTaskSensor(
            task_id="skips",
            external_dag_id="d",
            external_task_ids=["a", "s"],
            skipped_states=["skipped"],
            **quick,
        )
        ExternalTaskSensor(
            task_id="fails",
            external_dag_id="d",
            external_task_id="s",
            failed_states=["skipped"],
            **quick,
        )
        ExternalTaskSensor(task_id="nope", external_dag_id="d", external_task_id="nope", **quick)
    result = await engine.run(same_date, logical_date=L)
    states = await ti_states(engine, result.run_pk)
    assert states == {
        "run": "success",
        "task": "success",
        "group": "success",
        "skips": "skipped",
        "fails": "failed",
        "nope": "failed",
    }
    errors = {k[0]: r.error for k, r in (await ti_rows(engine, result.run_pk)).items()}
    assert "the external tasks ['s'] of DAG 'd' failed" in errors["fails"]
    assert "DAG 'd' has no task nope" in errors["nope"]

    with DAG("c2") as day_after:
        ExternalTaskSensor(
            task_id="delta",
            external_dag_id="d",
            external_task_id="a",
            execution_delta=timedelta(days=1),
            **quick,
        )
        ExternalTaskSensor(
            task_id="fn",
            external_dag_id="d",
            external_task_id="a",
            execution_date_fn=lambda dt, ds: [dt - timedelta(days=1)] if ds else [],
            **quick,
        )
        ExternalTaskSensor(
            task_id="no_run",
            external_dag_id="d",
            poke_interval=0.05,
            timeout=0.3,
            soft_fail=True,
        )
    result = await engine.run(day_after, logical_date=L + timedelta(days=1))
    assert await ti_states(engine, result.run_pk) == {
        "delta": "success",
        "fn": "success",
        "no_run": "skipped",
    }


async def test_the_trigger_queues_a_run_for_the_scheduler(engine: Engine) -> None:
    service = ServiceStore(engine.store)
    await service.sync_dags({"target": ("target.py", None)}, [])
    with DAG("t") as dag:
        TriggerDagRunOperator(
            task_id="trigger",
            trigger_dag_id="target",
            trigger_run_id="from_{{ ds_nodash }}",
            conf={"n": "{{ ds }}"},
            logical_date="{{ (logical_date + macros.timedelta(hours=1)).isoformat() }}",
        )
        TriggerDagRunOperator(task_id="unknown", trigger_dag_id="nowhere")
    result = await engine.run(dag, logical_date=L)
    rows = await ti_rows(engine, result.run_pk)
    assert rows[("trigger", -1)].state is TaskState.SUCCESS
    assert rows[("unknown", -1)].state is TaskState.FAILED
    assert "DAG 'nowhere' to trigger is not known to the scheduler" in rows[("unknown", -1)].error
    (queued,) = await service.runs(dag_id="target")
    assert queued.state is DagRunState.QUEUED
    assert queued.run_id == "from_20260201"
    assert queued.params == {"n": "2026-02-01"}
    assert queued.logical_date == L + timedelta(hours=1)

    # The same run again: an error; skipped; or (reset_dag_run) a queued run is used.
    with DAG("t2") as again:
        for task_id, extra in (
            ("plain", {}),
            ("skip", {"skip_when_already_exists": True}),
            ("reset", {"reset_dag_run": True}),
        ):
            TriggerDagRunOperator(
                task_id=task_id,
                trigger_dag_id="target",
                trigger_run_id="from_20260201",
                **extra,
            )
    result = await engine.run(again, logical_date=L)
    assert await ti_states(engine, result.run_pk) == {
        "plain": "failed",
        "skip": "skipped",
        "reset": "success",
    }
    assert [r.run_id for r in await service.runs(dag_id="target")] == ["from_20260201"]
