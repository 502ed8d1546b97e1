"""A start another writer made first is not made again (ADR 0041, exactly-once starts):
the scheduler does not hand it to an executor and says so."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from airloop import DAG, DagRunState, task
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.settings import Settings
from airloop.store.records import TIUpdate, WriteBatch

from .support import state_of, wait_until

OTHER = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def test_a_start_whose_row_moved_on_is_not_submitted(tmp_path: Path) -> None:
    ran: list[str] = []
    run_pk: list[int] = []
    known = asyncio.Event()

    async with Engine(Settings(home=tmp_path, shutdown_grace_seconds=0)) as engine:
        with DAG("raced") as dag:

            @task
            async def first() -> None:
                await known.wait()
                # Another scheduler starts "second" (try 1) while this one runs "first".
                start = TIUpdate(
                    run_pk[0], "second", -1, TaskState.QUEUED, 1, queued_at=OTHER, guard=0
                )
                assert not (await engine.store.write(WriteBatch(ti_updates=[start]))).refused

            @task
            async def second() -> None:
                ran.append("second")

            first() >> second()

        refusals: list[str] = []
        refused = asyncio.Event()

        class Refusals(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "not starting" in record.getMessage():
                    refusals.append(record.getMessage())
                    refused.set()  # (logged on the loop's thread, by the scheduler)

        handler = Refusals(logging.ERROR)
        scheduler_log = logging.getLogger("airloop.engine.scheduler")
        scheduler_log.addHandler(handler)
        try:
            active = await engine.start_run(dag, run_id="r")
            run_pk.append(active.run_pk)
            known.set()
            await asyncio.wait_for(refused.wait(), 60)
        finally:
            scheduler_log.removeHandler(handler)
        (message,) = refusals
        assert message.startswith("raced/r: not starting second (try 1: the row holds try 1")
        rows = {t.task_id: t for t in await engine.store.task_instances(active.run_pk)}
        assert rows["first"].state == "success"
        assert (rows["second"].state, rows["second"].try_number) == ("queued", 1)
        assert rows["second"].queued_at == OTHER  # as the other writer left it
        assert ran == []
    active.done.exception()  # the run was interrupted on leaving; retrieved either way


async def test_a_queued_try_found_after_a_restart_is_retried_as_a_new_try(
    tmp_path: Path,
) -> None:
    """A try the store shows queued may have started before the scheduler died: it is
    never started again under its number (ADR 0041). Lost, it is retried as try 2 (its
    guard is 1, the number the row holds), and it runs."""
    phase = {"first": True}

    with DAG("requeued") as dag:

        @task(retries=1, retry_delay=0)
        async def gate() -> str:
            if phase["first"]:
                await asyncio.sleep(3600)  # interrupted by the stop below
            return "done"

        gate()

    settings = Settings(home=tmp_path, shutdown_grace_seconds=0.5)
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1")
        await wait_until(engine, run, lambda r: state_of(r, "gate") is TaskState.RUNNING)
        engine.request_shutdown("test stop", keep_runs=True)
        await asyncio.wait_for(asyncio.shield(run.done), 30)
        # As a scheduler that died between queueing the try and running it left it.
        queued = TIUpdate(run.run_pk, "gate", -1, TaskState.QUEUED, 1, queued_at=OTHER)
        await engine.store.write(WriteBatch(ti_updates=[queued]))
    phase["first"] = False
    async with Engine(settings) as engine:
        run = await engine.start_run(dag, run_id="r1", resume=True)
        result = await asyncio.wait_for(asyncio.shield(run.done), 30)
        (row,) = await engine.store.task_instances(run.run_pk)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert (row.state, row.try_number) == ("success", 2)
