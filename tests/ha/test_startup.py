"""Three schedulers started at the same moment on an empty database: all of them come
up (one creates the schema, the others wait for it or find it), and they split the
DAGs between them."""

from __future__ import annotations

import pytest

from .cluster import Cluster
from .dagfiles import write_quick
from .db import Db
from .helpers import until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_three_schedulers_start_together_on_an_empty_database(
    cluster: Cluster, db: Db
) -> None:
    dag_ids = [f"quick_{i}" for i in range(6)]
    for dag_id in dag_ids:
        write_quick(cluster.dags, dag_id)
    for name in ("a", "b", "c"):
        cluster.start(name)
    await cluster.wait_alive(3, db)
    ids = {r["id"] for r in await db.registry() if r["state"] == "running"}

    async def split() -> bool:
        owners = await db.owners()
        held = {owner for owner, _ in owners.values()}
        return len(owners) == len(dag_ids) and held == ids

    await until(split, 60, "the six DAGs leased by all three schedulers")
    for s in cluster.schedulers:
        assert s.alive(), s.output()[-3000:]
