"""Runs and task instances counted by DAG and state: what ``/metrics`` reports from
the database (two ``GROUP BY`` queries; the API caches the answer for a few seconds)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from airloop.store.errors import connect
from airloop.store.runs import Store
from airloop.store.schema import dag_run, task_instance


@dataclass(frozen=True, slots=True)
class StateCount:
    dag_id: str
    state: str
    count: int


@dataclass(frozen=True, slots=True)
class StateCounts:
    runs: list[StateCount]
    task_instances: list[StateCount]


_RUNS = select(dag_run.c.dag_id, dag_run.c.state, func.count()).group_by(
    dag_run.c.dag_id, dag_run.c.state
)
_TIS = (
    select(dag_run.c.dag_id, task_instance.c.state, func.count())
    .select_from(task_instance.join(dag_run, task_instance.c.dag_run_id == dag_run.c.id))
    .group_by(dag_run.c.dag_id, task_instance.c.state)
)


async def state_counts(store: Store) -> StateCounts:
    """Every DAG's runs and task instances by state (one connection, two queries)."""
    async with connect(store.engine) as conn:
        runs = [StateCount(d, s, n) for d, s, n in (await conn.execute(_RUNS)).all()]
        tis = [StateCount(d, s, n) for d, s, n in (await conn.execute(_TIS)).all()]
    return StateCounts(runs, tis)
