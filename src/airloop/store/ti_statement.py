"""One statement for every task-instance update of the scheduler's write path: many
rows at once, optionally guarded by the try number (airloop.store.starts).

``UPDATE task_instance SET <columns> WHERE <key> [AND try_number = <guard>]``, with the
form each backend does fastest and whose row count is exact:

- PostgreSQL: one ``UPDATE ... FROM (VALUES ...)`` per POSTGRESQL_CHUNK rows. An
  executemany of the one-row statement goes quadratic on a freshly filled table: after
  a few executions the server switches the prepared statement to a generic plan through
  the ``(dag_run_id, updated_at)`` index, a scan of the run's rows per row (10,000 rows:
  14 -- 30 s, against 0.2 s for the multi-row form). The server reports ``UPDATE n``.
- MySQL/MariaDB: one ``UPDATE ... JOIN (SELECT ... UNION ALL SELECT ...)`` per
  MYSQL_CHUNK rows: asyncmy sends an executemany UPDATE as one statement per row. The
  count is of rows found (SQLAlchemy's MySQL dialects connect with CLIENT_FOUND_ROWS).
- SQLite: executemany of the one-row statement (in process, no round trips); the
  driver sums the rows changed.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Dialect, and_, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.store.schema import task_instance

#: Rows per multi-row statement. PostgreSQL takes at most 32,767 parameters in one
#: statement (at most 16 a row here); MySQL's limit is the packet size.
POSTGRESQL_CHUNK = 2000
MYSQL_CHUNK = 1000
#: Statement texts kept per statement: the full chunk and a few remainders.
_KEPT = 8

_KEY = ("b_run", "b_task", "b_index")
_KEY_TYPES = ["BIGINT", "VARCHAR", "INTEGER"]
_GUARD = "b_guard"


class TIUpdateStatement:
    """Set ``columns`` of many task instances, compiled for one dialect.

    Rows are tuples: the new values in ``columns`` order, then run pk, task id and map
    index, then (``guarded``) the try number the row must hold to be written. A call
    returns how many rows matched.
    """

    def __init__(self, dialect: Dialect, columns: tuple[str, ...], *, guarded: bool) -> None:
        self.kind = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}.get(
            dialect.name, "executemany"
        )
        key = (*_KEY, _GUARD) if guarded else _KEY
        names = (*columns, *key)
        self._width = len(names)
        self._sql: dict[int, str] = {}
        q = dialect.identifier_preparer.quote
        on = "t.dag_run_id = v.b_run AND t.task_id = v.b_task AND t.map_index = v.b_index"
        if guarded:
            on += " AND t.try_number = v.b_guard"
        self._on = on
        if self.kind == "executemany":
            ti = task_instance.c
            where = [
                ti.dag_run_id == bindparam("b_run"),
                ti.task_id == bindparam("b_task"),
                ti.map_index == bindparam("b_index"),
            ]
            if guarded:
                where.append(ti.try_number == bindparam(_GUARD))
            statement = (
                update(task_instance)
                .where(and_(*where))
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
            types += _KEY_TYPES + (["INTEGER"] if guarded else [])
            self._first = "(" + ", ".join(f"${i + 1}::{t}" for i, t in enumerate(types)) + ")"
            self._columns = ", ".join(q(c) for c in names)
            self._set = ", ".join(f"{q(c)} = v.{q(c)}" for c in columns)
        else:
            self._first = "SELECT " + ", ".join(f"%s AS {q(c)}" for c in names)
            self._rest = "SELECT " + ", ".join("%s" for _ in names)
            self._set = ", ".join(f"t.{q(c)} = v.{q(c)}" for c in columns)

    async def __call__(self, conn: AsyncConnection, params: list[tuple[Any, ...]]) -> int:
        """Write the rows; return the number of rows matched."""
        if self.kind == "executemany":
            result = await conn.exec_driver_sql(self._executemany, params)
            return int(result.rowcount)
        chunk_size = POSTGRESQL_CHUNK if self.kind == "postgresql" else MYSQL_CHUNK
        matched = 0
        for start in range(0, len(params), chunk_size):
            chunk = params[start : start + chunk_size]
            flat = tuple([value for row in chunk for value in row])
            result = await conn.exec_driver_sql(self._statement(len(chunk)), flat)
            matched += int(result.rowcount)
        return matched

    def _statement(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            sql = self._postgresql(n) if self.kind == "postgresql" else self._mysql(n)
            if len(self._sql) < _KEPT:
                self._sql[n] = sql
        return sql

    def _postgresql(self, n: int) -> str:
        width = self._width
        rest = [
            "(" + ", ".join([f"${row * width + i + 1}" for i in range(width)]) + ")"
            for row in range(1, n)
        ]
        values = ", ".join([self._first, *rest])
        return (
            f"UPDATE task_instance AS t SET {self._set} "
            f"FROM (VALUES {values}) AS v({self._columns}) WHERE {self._on}"
        )

    def _mysql(self, n: int) -> str:
        values = " UNION ALL ".join([self._first] + [self._rest] * (n - 1))
        return f"UPDATE task_instance AS t JOIN ({values}) AS v ON {self._on} SET {self._set}"


def _unbounded(type_name: str) -> str:
    return re.sub(r"\(.*\)", "", type_name)
