"""Two scheduler services on one server database, in one process (ADR 0041): they
split the DAGs, each drives the runs of the DAGs it leases, and a graceful stop hands
the stopping one's DAGs (and a run it left unfinished) to the other at once. The
three-process suite with SIGKILL and SIGSTOP is tests/ha."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from airloop.core.states import DagRunState
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.leases import LeaseStore
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

DAG_FILE = """
import asyncio
from airloop import DAG, task

with DAG("{dag_id}", default_args={{"retries": 2, "retry_delay": 0}}) as dag:
    @task
    async def step(i: int) -> int:
        await asyncio.sleep({seconds})
        return i

    step.expand(i=list(range(5)))
"""
DAGS = [f"split_{i}" for i in range(4)]


def _settings(tmp_path: Path, url: str, name: str) -> Settings:
    return Settings(
        home=tmp_path / name,
        dags_folder=tmp_path / "dags",
        database_url=url,
        scheduler_poll_interval=0.2,
        scheduler_lease_ttl=3.0,
        scheduler_lease_renew_interval=0.5,
        shutdown_grace_seconds=0.5,
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[SchedulerService, asyncio.Event]]:
    service = SchedulerService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(60):
            await service.ready.wait()
        yield service, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.1)


async def test_two_schedulers_split_the_dags_and_hand_over_at_a_graceful_stop(
    tmp_path: Path, server_database_url: str
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    for dag_id in DAGS:
        (dags / f"{dag_id}.py").write_text(
            textwrap.dedent(DAG_FILE.format(dag_id=dag_id, seconds=0.05))
        )
    (dags / "slow.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id="slow", seconds=30)))
    all_dags = [*DAGS, "slow"]
    store = await Store.open(server_database_url)
    service_store = ServiceStore(store)
    leases = LeaseStore(store)
    try:
        async with (
            serving(_settings(tmp_path, server_database_url, "a")) as (a, stop_a),
            serving(_settings(tmp_path, server_database_url, "b")) as (b, _),
        ):
            assert a._keeper is not None
            assert b._keeper is not None
            ids = {a._keeper.scheduler_id, b._keeper.scheduler_id}

            async def split() -> bool:
                owners = await leases.owners(all_dags)
                return len(owners) == 5 and set(owners.values()) == ids

            await _until(split)
            # Every DAG is leased by exactly one of them, and each has some.
            assert not a._keeper.held & b._keeper.held
            assert a._keeper.held | b._keeper.held == set(all_dags)
            when = datetime(2026, 1, 1, tzinfo=UTC)
            pks = [
                await service_store.queue_run(dag_id, "r1", {}, when, run_type="manual")
                for dag_id in all_dags
            ]

            async def finished() -> bool:
                runs = await service_store.runs()
                return sum(r.state is DagRunState.SUCCESS for r in runs) == len(DAGS)

            await _until(finished)
            # The slow DAG's run is in flight; its owner stops gracefully: the other
            # takes its DAGs over at once (no lease expiry to wait for) and resumes it.
            slow_owner, other = (a, b) if "slow" in a._keeper.held else (b, a)
            slow_pk = pks[-1]

            async def slow_running() -> bool:
                run = await store.get_run(slow_pk)
                return run is not None and run.state is DagRunState.RUNNING

            try:
                await _until(slow_running)
            except TimeoutError:
                raise AssertionError(
                    (
                        await leases.owners(all_dags),
                        await service_store.runs(),
                        a._keeper.held,
                        b._keeper.held,
                    )
                ) from None
            stopped_id = slow_owner._keeper.scheduler_id if slow_owner._keeper else None
            if slow_owner is a:
                stop_a.set()
            else:
                # b is the inner context: stop it through its own event.
                assert b._keeper is not None
                b._stop.set()

            async def taken_over() -> bool:
                owners = await leases.owners(all_dags)
                return stopped_id not in owners.values() and None not in owners.values()

            await _until(taken_over, seconds=30)
            assert other._keeper is not None

            async def resumed() -> bool:
                # The tries cut off by the stop may have started: the new owner runs
                # each again as a new try (never the same try twice).
                tis = await store.task_instances(slow_pk)
                return len(tis) == 5 and all(
                    ti.try_number == 2 and ti.state.value in ("queued", "running") for ti in tis
                )

            try:
                await _until(resumed, seconds=30)
            except TimeoutError:
                raise AssertionError(await store.task_instances(slow_pk)) from None
            assert slow_pk in other.active
    finally:
        await store.close()
