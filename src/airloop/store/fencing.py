"""Fencing: a scheduler's writes about runs go through only while it holds their DAGs'
leases (ADR 0041).

Each write transaction first reads the DAG rows it is about with a shared row lock, in
dag_id order (``FOR SHARE``; MariaDB ``LOCK IN SHARE MODE``), and compares owner and
token with what this scheduler holds. A claim's ``UPDATE dag ... lease_token + 1``
waits for those shared locks, so a writer either commits before an adoption (and the
adopter reads what it wrote) or finds the new token and writes nothing about that DAG:
there is no moment with two writers. A scheduler paused past its lease (SIGSTOP, a
frozen VM) that wakes up can change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.store.schema import dag as dag_table
from airloop.store.schema import dag_run

log = logging.getLogger(__name__)
_d = dag_table.c


@dataclass
class Fence:
    """The leases one scheduler holds, checked by every write about their runs."""

    #: This scheduler's registry row.
    owner_id: int
    #: dag_id -> the token of the lease held.
    tokens: dict[str, int] = field(default_factory=dict)
    #: run pk -> dag_id of the runs this scheduler drives (filled as they start).
    run_dags: dict[int, str] = field(default_factory=dict)
    #: Rows discarded because their DAG's lease had moved (for /metrics and tests).
    rejected: int = 0
    #: Called with the DAGs a write found lost (the service drops their runs).
    on_lost: Callable[[set[str]], None] | None = None

    def hold(self, tokens: dict[str, int]) -> None:
        self.tokens.update(tokens)

    def forget(self, dag_ids: Iterable[str]) -> None:
        lost = set(dag_ids)
        for dag_id in lost:
            self.tokens.pop(dag_id, None)
        self.run_dags = {pk: d for pk, d in self.run_dags.items() if d not in lost}

    def runs_of(self, dag_ids: Collection[str]) -> set[int]:
        return {pk for pk, d in self.run_dags.items() if d in dag_ids}


async def dags_of_runs(conn: AsyncConnection, fence: Fence, run_pks: Collection[int]) -> None:
    """Learn the DAG of runs the fence does not know yet (a run written before the
    engine bound it: rare; one query)."""
    missing = [pk for pk in run_pks if pk not in fence.run_dags]
    if missing:
        query = select(dag_run.c.id, dag_run.c.dag_id).where(dag_run.c.id.in_(missing))
        for row in await conn.execute(query):
            fence.run_dags[int(row.id)] = row.dag_id


async def stale_dags(conn: AsyncConnection, fence: Fence, dag_ids: Collection[str]) -> set[str]:
    """Of ``dag_ids``, those whose lease this scheduler no longer holds; the rows of
    the others stay share-locked until the transaction ends."""
    if not dag_ids:
        return set()
    names = sorted(dag_ids)
    query = (
        select(_d.dag_id, _d.owner_id, _d.lease_token)
        .where(_d.dag_id.in_(names))
        .order_by(_d.dag_id)
        .with_for_update(read=True)
    )
    rows = {r.dag_id: (r.owner_id, int(r.lease_token)) for r in await conn.execute(query)}
    held = fence.tokens
    return {d for d in names if d not in held or rows.get(d) != (fence.owner_id, held[d])}


def report_lost(fence: Fence, lost: set[str], discarded: int, what: str) -> None:
    """Say what a fenced write discarded, and hand the DAGs to the service."""
    if not lost:
        return
    fence.rejected += discarded
    log.error(
        "fenced: %d %s about DAG(s) %s discarded: their lease moved to another scheduler "
        "(this one was paused or cut off past its lease); letting their runs go",
        discarded,
        what,
        ", ".join(sorted(lost)),
    )
    if fence.on_lost is not None:
        fence.on_lost(lost)
