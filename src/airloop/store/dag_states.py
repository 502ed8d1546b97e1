"""What the DAG list's live stream watches: the last few runs of some DAGs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from airloop.store.errors import connect
from airloop.store.runs import Store
from airloop.store.schema import dag_run


@dataclass(frozen=True, slots=True)
class RunBrief:
    """A run as the DAG list draws it (one status circle)."""

    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None


async def last_runs(
    store: Store, dag_ids: Sequence[str], per_dag: int = 10
) -> dict[str, list[RunBrief]]:
    """Each of ``dag_ids``'s newest ``per_dag`` runs, newest first (one query; DAGs
    without runs map to an empty list)."""
    out: dict[str, list[RunBrief]] = {dag_id: [] for dag_id in dag_ids}
    if not dag_ids:
        return out
    rank = (
        func.row_number()
        .over(partition_by=dag_run.c.dag_id, order_by=dag_run.c.id.desc())
        .label("rank")
    )
    ranked = (
        select(
            dag_run.c.dag_id,
            dag_run.c.id,
            dag_run.c.run_id,
            dag_run.c.state,
            dag_run.c.run_type,
            dag_run.c.logical_date,
            dag_run.c.start_date,
            dag_run.c.end_date,
            rank,
        )
        .where(dag_run.c.dag_id.in_(list(dag_ids)))
        .subquery()
    )
    query = (
        select(ranked).where(ranked.c.rank <= per_dag).order_by(ranked.c.dag_id, ranked.c.id.desc())
    )
    async with connect(store.engine) as conn:
        rows = (await conn.execute(query)).all()
    for row in rows:
        out[row.dag_id].append(
            RunBrief(
                run_id=row.run_id,
                state=row.state,
                run_type=row.run_type,
                logical_date=row.logical_date,
                start_date=row.start_date,
                end_date=row.end_date,
            )
        )
    return out
