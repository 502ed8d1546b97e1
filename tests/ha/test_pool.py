"""A pool of five slots shared by three schedulers: never more than five of its task
instances run at once anywhere (the tasks count themselves under a file lock), and
the pool's work is spread over more than one scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cluster import Cluster
from .dagfiles import write_pooled
from .db import Db
from .helpers import queue_runs, trigger_all, wait_finished

DAGS = 6
TASKS = 8
SECONDS = 1.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_pool_slots_hold_across_schedulers(cluster: Cluster, db: Db, tmp_path: Path) -> None:
    dag_ids = [f"pooled_{i}" for i in range(DAGS)]
    for dag_id in dag_ids:
        write_pooled(cluster.dags, tmp_path, dag_id, TASKS, SECONDS)
    # The schema first: three schedulers creating it at once is test_startup's case.
    migrated = await cluster.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    for name in ("a", "b", "c"):
        cluster.start(name)
    await cluster.wait_alive(3, db)
    runs = [(d, "p") for d in dag_ids]
    # One through the CLI, the rest through the same store call (see queue_runs).
    await trigger_all(cluster, runs[:1])
    await queue_runs(db.url, runs[1:])
    states = await wait_finished(db, DAGS, within=180)
    assert set(states.values()) == {"success"}, states

    overflow = tmp_path / "pool_overflow.txt"
    assert not overflow.exists(), "\n".join(overflow.read_text().splitlines()[:3])
    entries = [line.split() for line in (tmp_path / "pool_log.txt").read_text().splitlines()]
    assert len(entries) == DAGS * TASKS
    assert max(int(n) for _, n in entries) <= 5
    pids = {int(pid) for pid, _ in entries}
    ours = {s.pid for s in cluster.schedulers}
    assert pids <= ours
    assert len(pids) > 1, "one scheduler ran every pooled task"
