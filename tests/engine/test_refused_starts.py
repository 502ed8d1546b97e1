"""A start another writer made first is not made again (ADR 0041, exactly-once starts):
the scheduler does not hand it to an executor and says so."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airloop import DAG, task
from airloop.core.states import TaskState
from airloop.engine.engine import Engine
from airloop.settings import Settings
from airloop.store.records import TIUpdate, WriteBatch

OTHER = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def test_a_start_whose_row_moved_on_is_not_submitted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
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

        with caplog.at_level(logging.ERROR, logger="airloop.engine.scheduler"):
            active = await engine.start_run(dag, run_id="r")
            run_pk.append(active.run_pk)
            known.set()
            async with asyncio.timeout(60):
                while not any("not starting" in r.getMessage() for r in caplog.records):
                    await asyncio.sleep(0.05)
        (message,) = [r.getMessage() for r in caplog.records if "not starting" in r.getMessage()]
        assert message.startswith("raced/r: not starting second (try 1: the row holds try 1")
        rows = {t.task_id: t for t in await engine.store.task_instances(active.run_pk)}
        assert rows["first"].state == "success"
        assert (rows["second"].state, rows["second"].try_number) == ("queued", 1)
        assert rows["second"].queued_at == OTHER  # as the other writer left it
        assert ran == []
    active.done.exception()  # the run was interrupted on leaving; retrieved either way
