"""The store's run events: what a cross-DAG wait is woken by (ADR 0036)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from airloop.core.states import DagRunState, TaskState
from airloop.store.records import NewTaskInstance, RunUpdate, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.service import ServiceStore


def fired(watch: object) -> bool:
    return watch._set.is_set()  # type: ignore[attr-defined]


async def test_writes_wake_the_watches_of_their_runs_and_dags(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        events = store.events
        service = ServiceStore(store)
        assert not events.active
        with events.watch(dag_id="b") as on_dag, events.watch(dag_id="other") as elsewhere:
            pk = await service.queue_run("b", "r1", {}, datetime(2026, 1, 1, tzinfo=UTC))
            assert fired(on_dag)
            assert not fired(elsewhere)
            assert events.queued.is_set()
            await on_dag.wait()  # returns at once: the change is not lost, then clears
            assert not fired(on_dag)
            with (
                events.watch(run_pk=pk) as on_run,
                events.watch(run_pk=pk, task_ids=["other"]) as on_other,
                events.watch(run_pk=pk, task_ids=()) as on_state,
            ):
                tis = [NewTaskInstance("t", "default_pool", 1, 1, 1)]
                await store.create_run(
                    dag_id="b",
                    run_id="r1",
                    run_type="manual",
                    logical_date=None,
                    params={},
                    task_instances=tis,
                    existing_pk=pk,
                )
                assert fired(on_run)
                assert fired(on_dag)
                for watch in (on_run, on_other, on_state):
                    await watch.wait()
                now = datetime.now(UTC)
                ti = TIUpdate(pk, "t", -1, TaskState.SUCCESS, 1, end_date=now)
                await store.write(WriteBatch(ti_updates=[ti]))
                assert fired(on_run)
                assert not fired(on_other)  # another task's change
                assert not fired(on_state)  # a task's change, not the run's
                await store.write(WriteBatch(run_updates=[RunUpdate(pk, DagRunState.SUCCESS, now)]))
                assert fired(on_other)
                assert fired(on_state)
                assert not fired(elsewhere)
            assert events.watchers == 2  # the run's watches unsubscribed on exit
        assert not events.active
    finally:
        await store.close()


async def test_a_waiter_is_woken_by_a_later_write(tmp_path: object) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/a.db")
    try:
        with store.events.watch(dag_id="b") as watch:
            waiter = asyncio.create_task(watch.wait())
            await asyncio.sleep(0)
            assert not waiter.done()
            await ServiceStore(store).queue_run("b", "r", {}, datetime.now(UTC))
            async with asyncio.timeout(10):
                await waiter
    finally:
        await store.close()
