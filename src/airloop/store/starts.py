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

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Dialect, and_, bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.core.states import TaskState
from airloop.store.records import RefusedStart, TIUpdate
from airloop.store.schema import task_instance

#: Rows per multi-row statement. PostgreSQL takes at most 32,767 parameters in one
#: statement (16 a row here); MySQL's limit is the packet size.
POSTGRESQL_CHUNK = 2000
MYSQL_CHUNK = 1000
#: Keys per re-read (SQLite allows 32,766 parameters; three a key).
RECHECK_CHUNK = 1000

_KEY = ("b_run", "b_task", "b_index", "b_guard")


class GuardedStarts:
    """``UPDATE task_instance SET <columns> WHERE <key> AND try_number = <guard>`` for
    many rows at once, compiled for one dialect.

    Rows are tuples: the new values in ``columns`` order, then run pk, task id, map
    index and the guard.
    """

    def __init__(self, dialect: Dialect, columns: tuple[str, ...]) -> None:
        self.kind = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}.get(
            dialect.name, "executemany"
        )
        names = (*columns, *_KEY)
        q = dialect.identifier_preparer.quote
        self._names = names
        self._sql: dict[int, str] = {}
        if self.kind == "executemany":
            ti = task_instance.c
            statement = (
                update(task_instance)
                .where(
                    and_(
                        ti.dag_run_id == bindparam("b_run"),
                        ti.task_id == bindparam("b_task"),
                        ti.map_index == bindparam("b_index"),
                        ti.try_number == bindparam("b_guard"),
                    )
                )
                .values({name: bindparam(name) for name in columns})
            )
            compiled = statement.compile(dialect=dialect)
            assert compiled.positiontup is not None, dialect.paramstyle
            assert tuple(compiled.positiontup) == names, compiled.positiontup
            self._executemany = compiled.string
        elif self.kind == "postgresql":
            assert dialect.paramstyle == "numeric_dollar", dialect.paramstyle
            # Parameters in VALUES have no type of their own: the first row says which.
            # Unbounded types (varchar, not varchar(20)): a cast to varchar(n) would
            # truncate a value silently where the column refuses it with an error.
            types = [_unbounded(task_instance.c[c].type.compile(dialect=dialect)) for c in columns]
            types += ["BIGINT", "VARCHAR", "INTEGER", "INTEGER"]
            self._types = types
            self._columns = ", ".join(q(c) for c in names)
            self._set = ", ".join(f"{q(c)} = v.{q(c)}" for c in columns)
        else:
            self._first = "SELECT " + ", ".join(f"%s AS {q(c)}" for c in names)
            self._rest = "SELECT " + ", ".join("%s" for _ in names)
            self._set = ", ".join(f"t.{q(c)} = v.{q(c)}" for c in columns)

    async def __call__(
        self, conn: AsyncConnection, rows: Sequence[TIUpdate], params: list[tuple[Any, ...]]
    ) -> list[RefusedStart]:
        """Write the start rows (``params``, one tuple per row of ``rows``); return the
        refused ones."""
        if await self._matched(conn, params) == len(params):
            return []
        return await recheck(conn, rows)

    async def _matched(self, conn: AsyncConnection, params: list[tuple[Any, ...]]) -> int:
        if self.kind == "executemany":
            result = await conn.exec_driver_sql(self._executemany, params)
            return int(result.rowcount)
        chunk_size = POSTGRESQL_CHUNK if self.kind == "postgresql" else MYSQL_CHUNK
        matched = 0
        for start in range(0, len(params), chunk_size):
            chunk = params[start : start + chunk_size]
            flat = tuple(value for row in chunk for value in row)
            result = await conn.exec_driver_sql(self._statement(len(chunk)), flat)
            matched += int(result.rowcount)
        return matched

    def _statement(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            sql = self._postgresql(n) if self.kind == "postgresql" else self._mysql(n)
            if len(self._sql) < 8:  # the full chunk and a few remainders
                self._sql[n] = sql
        return sql

    def _postgresql(self, n: int) -> str:
        width = len(self._names)
        first = "(" + ", ".join(f"${i + 1}::{t}" for i, t in enumerate(self._types)) + ")"
        rest = [
            "(" + ", ".join(f"${row * width + i + 1}" for i in range(width)) + ")"
            for row in range(1, n)
        ]
        values = ", ".join([first, *rest])
        return (
            f"UPDATE task_instance AS t SET {self._set} "
            f"FROM (VALUES {values}) AS v({self._columns}) "
            "WHERE t.dag_run_id = v.b_run AND t.task_id = v.b_task "
            "AND t.map_index = v.b_index AND t.try_number = v.b_guard"
        )

    def _mysql(self, n: int) -> str:
        values = " UNION ALL ".join([self._first] + [self._rest] * (n - 1))
        return (
            f"UPDATE task_instance AS t JOIN ({values}) AS v "
            "ON t.dag_run_id = v.b_run AND t.task_id = v.b_task AND t.map_index = v.b_index "
            f"AND t.try_number = v.b_guard SET {self._set}"
        )


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


def _unbounded(type_name: str) -> str:
    return re.sub(r"\(.*\)", "", type_name)
