"""Guarded starts (ADR 0041, "Exactly-once starts"): a tick's start rows are written
only where the row still holds the try number the writer expects.

A start is one state change, ``... WHERE <key> AND try_number = :guard``, so of several
schedulers trying to start the same try exactly one changes the row. The statements
give an exact count of the rows they matched on every backend: SQLite sums an
executemany's changes; PostgreSQL reports ``UPDATE n`` for one multi-row ``UPDATE ...
FROM (VALUES ...)``; MySQL/MariaDB report the rows an ``UPDATE ... JOIN`` found
(SQLAlchemy's MySQL dialects always connect with CLIENT_FOUND_ROWS). When every start
matched -- always, with one scheduler -- that is all. Otherwise the start rows are read
again in the same transaction: a row exactly as this write wanted it is a start an
earlier attempt of the same batch committed (its answer was lost and the batch was
re-sent); any other row is a refused start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Dialect, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.core.states import TaskState
from airloop.store.records import RefusedStart, TIUpdate
from airloop.store.schema import task_instance
from airloop.store.ti_statement import TIUpdateStatement

__all__ = ["GuardedStarts", "recheck"]

#: Keys per re-read (SQLite allows 32,766 parameters; three a key).
RECHECK_CHUNK = 1000


class GuardedStarts:
    """``UPDATE task_instance SET <columns> WHERE <key> AND try_number = <guard>`` for
    many rows at once, compiled for one dialect (the shared task-instance update of
    airloop.store.ti_statement, guarded).

    Rows are tuples: the new values in ``columns`` order, then run pk, task id, map
    index and the guard.
    """

    def __init__(self, dialect: Dialect, columns: tuple[str, ...]) -> None:
        self._update = TIUpdateStatement(dialect, columns, guarded=True)

    async def __call__(
        self, conn: AsyncConnection, rows: Sequence[TIUpdate], params: list[tuple[Any, ...]]
    ) -> list[RefusedStart]:
        """Write the start rows (``params``, one tuple per row of ``rows``); return the
        refused ones."""
        if await self._update(conn, params) == len(params):
            return []
        return await recheck(conn, rows)


async def recheck(conn: AsyncConnection, rows: Sequence[TIUpdate]) -> list[RefusedStart]:
    """The starts among ``rows`` whose row is not exactly as this write wanted it (same
    try number, state and queued_at): refused.

    Locking reads (``FOR UPDATE``): they see the latest committed row, not the
    transaction's snapshot (MySQL's REPEATABLE READ), and wait for a competing writer's
    transaction to end.
    """
    ti = task_instance.c
    found: dict[tuple[int, str, int], Any] = {}
    for start in range(0, len(rows), RECHECK_CHUNK):
        keys = [(u.run_pk, u.task_id, u.map_index) for u in rows[start : start + RECHECK_CHUNK]]
        query = (
            select(ti.dag_run_id, ti.task_id, ti.map_index, ti.state, ti.try_number, ti.queued_at)
            .where(tuple_(ti.dag_run_id, ti.task_id, ti.map_index).in_(keys))
            .with_for_update()
        )
        for r in await conn.execute(query):
            found[(r.dag_run_id, r.task_id, r.map_index)] = r
    refused: list[RefusedStart] = []
    for u in rows:
        row = found.get((u.run_pk, u.task_id, u.map_index))
        if (
            row is not None
            and row.try_number == u.try_number
            and row.state == u.state.value
            and row.queued_at == u.queued_at
        ):
            continue
        refused.append(
            RefusedStart(
                u.run_pk,
                u.task_id,
                u.map_index,
                u.try_number,
                None if row is None else int(row.try_number),
                None if row is None else TaskState(row.state),
            )
        )
    return refused
