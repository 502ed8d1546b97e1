"""``@once`` and ``@continuous`` schedules under the scheduler service."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from airloop.store.runs import Store
from airloop.store.service import ServiceStore

from .test_scheduler_service import MANUAL, eventually, running, runs, write

ONCE = """
from datetime import datetime, UTC
from airloop import DAG, task

with DAG("once", schedule="@once", start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
    @task
    def hello(data_interval_start, data_interval_end) -> list[str]:
        return [data_interval_start.isoformat(), data_interval_end.isoformat()]
    hello()
"""

CONTINUOUS = """
from datetime import datetime, UTC
from airloop import DAG, task

with DAG("loop", schedule="@continuous", max_active_runs=1,
         start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
    @task
    def step() -> int:
        return 1
    step()
"""


async def test_once_creates_one_run_and_then_none(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "once.py", ONCE)
    write(dags, "manual.py", MANUAL.format(name="first"))
    async with running(tmp_path) as (_, db):
        await eventually(lambda: _done(db, "once", 1))
        # A later pass of the service (it starts this triggered run) creates no more.
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            await ServiceStore(store).queue_run("manual", "t1", {"n": 1}, datetime.now(UTC))
        finally:
            await store.close()
        await eventually(lambda: _done(db, "manual", 1))
    (once,) = [r for r in await runs(db) if r.dag_id == "once"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert (once.logical_date, once.data_interval_start, once.data_interval_end) == (
        start,
        start,
        start,
    )


async def test_continuous_starts_the_next_run_when_the_previous_ends(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    write(dags, "loop.py", CONTINUOUS)
    # A long poll interval: the next run comes from the previous one ending, not a poll.
    async with running(tmp_path, scheduler_poll_interval=30.0) as (_, db):
        await eventually(lambda: _done(db, "loop", 3))
    done = sorted(
        [r for r in await runs(db) if r.dag_id == "loop" and r.state == "success"],
        key=lambda r: r.logical_date,
    )
    assert len(done) >= 3
    for before, after in itertools.pairwise(done):
        # One at a time, each interval starting where the previous one ended.
        assert after.start_date >= before.end_date
        assert after.data_interval_start == before.data_interval_end
        assert after.logical_date == after.data_interval_start


async def _done(db: Path, dag_id: str, n: int) -> bool:
    return sum(1 for r in await runs(db) if r.dag_id == dag_id and r.state == "success") >= n
