"""PostgreSQL: a run triggered from the CLI starts within a second although the
schedulers poll only every minute (LISTEN/NOTIFY), with three schedulers running."""

from __future__ import annotations

import pytest

from .cluster import Cluster
from .dagfiles import write_quick
from .db import Db
from .helpers import trigger_all, until, wait_finished

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.mark.parametrize("server_database_url", ["postgresql"], indirect=True)
async def test_trigger_is_picked_up_within_a_second(cluster: Cluster, db: Db) -> None:
    dag_ids = ["quick_0", "quick_1", "quick_2"]
    for dag_id in dag_ids:
        write_quick(cluster.dags, dag_id)
    cluster.env["AIRLOOP_SCHEDULER_POLL_INTERVAL"] = "60"
    for name in ("a", "b", "c"):
        cluster.start(name)
    await cluster.wait_alive(3, db)

    async def owned() -> bool:
        owners = await db.owners()
        return all(owners.get(d, (None, 0))[0] is not None for d in dag_ids)

    await until(owned, 60, f"{dag_ids} claimed")
    # One trigger at a time: each is measured on its own, from the moment it is queued.
    for n, dag_id in enumerate(dag_ids):
        await trigger_all(cluster, [(dag_id, "now")])
        # Far longer than the second asked, far shorter than the poll interval.
        await wait_finished(db, n + 1, within=20)
    rows = await db.rows("SELECT dag_id, created_at, start_date, state FROM dag_run")
    assert len(rows) == len(dag_ids)
    for row in rows:
        assert row["state"] == "success", row
        waited = (row["start_date"] - row["created_at"]).total_seconds()
        assert waited < 1.0, f"{row['dag_id']}: started {waited:.2f}s after it was queued"
