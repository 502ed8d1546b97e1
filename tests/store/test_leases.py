"""DAG leases and fencing on the real servers (ADR 0041): claims split DAGs between
schedulers, an expired lease is taken over with a greater token, and the former owner's
writes about the DAG's runs are refused while it still believes it owns them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import select, text

from airloop.core.states import TaskState
from airloop.exceptions import LeaseLostError
from airloop.store.checkpoints import CheckpointWriter
from airloop.store.fencing import Fence
from airloop.store.leases import LeaseStore, server_supports_leases
from airloop.store.records import NewTaskInstance, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.schema import task_instance
from airloop.store.service import ServiceStore

DAGS = [f"dag_{i}" for i in range(6)]


@pytest_asyncio.fixture
async def stores(server_database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two schedulers' stores on one fresh server database, with DAG rows."""
    a = await Store.open(server_database_url)
    b = await Store.open(server_database_url)
    try:
        await ServiceStore(a).sync_dags({d: (f"/dags/{d}.py", None) for d in DAGS}, [])
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _scheduler(store: Store, ttl: float = 30.0) -> tuple[LeaseStore, int]:
    leases = LeaseStore(store)
    return leases, await leases.register(hostname="host", pid=1, ttl=ttl, mode="ha")


async def test_the_servers_have_what_leases_need(stores: tuple[Store, Store]) -> None:
    assert await server_supports_leases(stores[0]) is None


async def test_two_schedulers_claiming_take_different_dags(stores: tuple[Store, Store]) -> None:
    (la, a), (lb, b) = await _scheduler(stores[0]), await _scheduler(stores[1])
    assert await la.live_schedulers() == 2
    got_a, got_b = await asyncio.gather(la.claim(a, DAGS, 3, 30), lb.claim(b, DAGS, 3, 30))
    assert len(got_a) == len(got_b) == 3
    assert not set(got_a) & set(got_b)
    assert set(got_a.values()) == set(got_b.values()) == {1}
    # Nothing is left to claim while the leases live.
    assert await la.claim(a, DAGS, 6, 30) == {}
    owners = await la.owners(DAGS)
    assert {d for d, o in owners.items() if o == a} == set(got_a)


async def test_an_expired_lease_is_taken_over_and_the_old_owner_learns_it_lost(
    stores: tuple[Store, Store],
) -> None:
    (la, a), (lb, b) = await _scheduler(stores[0]), await _scheduler(stores[1])
    held = await la.claim(a, ["dag_0", "dag_1"], 2, ttl=0.3)
    assert held == {"dag_0": 1, "dag_1": 1}
    # A live lease is not taken...
    assert await lb.claim(b, ["dag_0"], 1, 30) == {}
    await asyncio.sleep(0.6)  # ...an expired one is (the database's clock decides)
    assert await lb.claim(b, ["dag_0"], 1, 30) == {"dag_0": 2}
    renewal = await la.renew(a, held, 30, {})
    assert renewal.lost == {"dag_0"}
    assert renewal.held == {"dag_1": 1}


async def test_release_hands_the_dag_over_at_once(stores: tuple[Store, Store]) -> None:
    (la, a), (lb, b) = await _scheduler(stores[0]), await _scheduler(stores[1])
    await la.claim(a, ["dag_2"], 1, 30)
    await la.stop(a, ["dag_2"])
    assert await lb.claim(b, ["dag_2"], 1, 30) == {"dag_2": 2}
    assert await la.live_schedulers() == 1  # the stopped one is not live


async def test_a_former_owner_cannot_write_about_the_dag_it_lost(
    stores: tuple[Store, Store],
) -> None:
    store_a, store_b = stores
    (la, a), (lb, b) = await _scheduler(store_a), await _scheduler(store_b)
    store_a.fence = fence_a = Fence(a)
    fence_a.hold(await la.claim(a, ["dag_3"], 1, ttl=0.3))
    lost: list[set[str]] = []
    fence_a.on_lost = lost.append
    run_pk = await store_a.create_run(
        dag_id="dag_3",
        run_id="r1",
        run_type="manual",
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        params={},
        task_instances=[NewTaskInstance("t", "default_pool", 1, 1, 1)],
    )
    # While the lease is held, the owner's batch is written.
    running = WriteBatch(ti_updates=[TIUpdate(run_pk, "t", -1, TaskState.RUNNING, 1)])
    assert not (await store_a.write(running)).stale_runs
    await asyncio.sleep(0.6)
    assert await lb.claim(b, ["dag_3"], 1, 30) == {"dag_3": 2}
    # Then A (paused past its lease, now awake) tries to finish the task: refused.
    late = WriteBatch(ti_updates=[TIUpdate(run_pk, "t", -1, TaskState.SUCCESS, 1)])
    result = await store_a.write(late)
    assert result.stale_runs == {run_pk}
    assert lost == [{"dag_3"}]
    assert fence_a.rejected == 1
    async with store_b.engine.connect() as conn:
        state = (
            await conn.execute(
                select(task_instance.c.state).where(task_instance.c.dag_run_id == run_pk)
            )
        ).scalar()
    assert state == TaskState.RUNNING.value
    # Nor can it create a run of the DAG, or save a checkpoint about its run.
    with pytest.raises(LeaseLostError):
        await store_a.create_run(
            dag_id="dag_3",
            run_id="r2",
            run_type="manual",
            logical_date=None,
            params={},
            task_instances=[],
        )
    writer = CheckpointWriter(store_a)
    with pytest.raises(LeaseLostError):
        await writer.save(run_pk, "t", -1, {"try_number": 1, "value": "job-1"})
    await writer.aclose()


async def test_a_claim_waits_for_no_writer_and_never_overlaps_one(
    stores: tuple[Store, Store],
) -> None:
    """A DAG row share-locked by its owner's open write transaction is skipped by a
    claim (SKIP LOCKED), not taken under it: the write and the takeover never overlap."""
    store_a, store_b = stores
    (la, a), (lb, b) = await _scheduler(store_a), await _scheduler(store_b)
    await la.claim(a, ["dag_4"], 1, ttl=0.3)
    await asyncio.sleep(0.6)  # expired, but its owner is in the middle of a write
    lock = "LOCK IN SHARE MODE" if store_a.engine.dialect.name != "postgresql" else "FOR SHARE"
    async with store_a.engine.begin() as conn:
        await conn.execute(text(f"SELECT lease_token FROM dag WHERE dag_id = 'dag_4' {lock}"))
        assert await lb.claim(b, ["dag_4"], 1, 30) == {}
    assert await lb.claim(b, ["dag_4"], 1, 30) == {"dag_4": 2}
