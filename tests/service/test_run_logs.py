"""What the scheduler service says about runs: created or triggered, started, finished."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airloop.store.runs import Store
from airloop.store.service import ServiceStore

from .test_scheduler_service import DAILY, MANUAL, _all_done, _states, eventually, running, write


async def test_runs_created_triggered_started_and_finished_are_logged_at_info(
    tmp_path: Path, dags: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airloop.service")
    write(dags, "daily.py", DAILY.format(catchup=False))
    write(dags, "manual.py", MANUAL.format(name="once"))
    async with running(tmp_path) as (_, db):
        await eventually(lambda: _all_done(db, 1))
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            await ServiceStore(store).queue_run("manual", "t1", {"n": 3}, datetime.now(UTC))
        finally:
            await store.close()
        await eventually(lambda: _states(db, {"t1": "success"}))
        await eventually(lambda: _logged(caplog, "run t1 of manual finished"))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    scheduled = "scheduled__2026-11-05T00:00:00+00:00"
    assert f"created run {scheduled} of daily" in infos
    assert any(m.startswith(f"run {scheduled} of daily finished: success in ") for m in infos)
    assert "starting triggered run t1 of manual (queued by the CLI or a backfill)" in infos
    (done,) = [m for m in infos if m.startswith("run t1 of manual finished")]
    assert done.startswith("run t1 of manual finished: success in ")
    assert done.endswith("s")


async def _logged(caplog: pytest.LogCaptureFixture, prefix: str) -> bool:
    return any(r.getMessage().startswith(prefix) for r in caplog.records)


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder
