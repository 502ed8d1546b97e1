"""The lean write path: a tick's rows straight to the driver's executemany.

The scheduler writes tens of thousands of rows a second. Going through SQLAlchemy's
``execute(statement, [dict, ...])`` costs, per row, a parameter dict, the compiled
statement's parameter processing and three Python calls per datetime (the type
decorator, then the dialect's own processor). Here each statement is compiled once
per dialect (SQLAlchemy does the SQL and the paramstyle), rows are plain tuples in
the compiled order, and the one conversion the driver cannot do -- aware UTC
datetimes to what the column stores -- is one function call per non-null datetime.

MySQL/MariaDB: asyncmy sends an executemany UPDATE as one statement per row (only
INSERTs are folded into one multi-row statement). There the task-instance rows are
joined into one ``UPDATE ... JOIN (SELECT ... UNION ALL SELECT ...)`` per chunk.

Rows that start a try carry a guard and go through the guarded statement instead
(airloop.store.starts); the writer says which of them it refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Table, and_, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.store.records import (
    CheckpointRow,
    LogRow,
    RefusedStart,
    RenderedRow,
    TIUpdate,
    XComRow,
)
from airloop.store.schema import rendered_task_instance_fields, task_instance, task_log, xcom
from airloop.store.starts import GuardedStarts

#: The task-instance columns the scheduler rewrites when a task instance changes,
#: in the order of TIUpdate's fields after the key.
TI_MUTABLE = (
    "state",
    "try_number",
    "queued_at",
    "start_date",
    "end_date",
    "duration",
    "hostname",
    "executor",
    "next_retry_at",
    "error",
    "rendered_map_index",
)
#: Rows per multi-row UPDATE on MySQL (about 12 parameters each).
MYSQL_CHUNK = 1000

Convert = Callable[[datetime | None], Any]


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format (what the reads parse):
    # "YYYY-MM-DD HH:MM:SS.ffffff". isoformat is one C call (strftime is 4x slower);
    # [:26] drops the "+00:00" of an aware value.
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _naive_utc(value: datetime | None) -> datetime | None:
    # PostgreSQL's TIMESTAMP WITHOUT TIME ZONE and MySQL's DATETIME(6): naive UTC.
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None)


def _compiled(statement: Any, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    compiled = statement.compile(dialect=dialect)
    assert compiled.positiontup is not None, dialect.paramstyle
    return compiled.string, tuple(compiled.positiontup)


def _insert(table: Table, columns: Sequence[str], dialect: Dialect) -> str:
    sql, order = _compiled(insert(table).values({c: bindparam(c) for c in columns}), dialect)
    assert order == tuple(columns), order
    return sql


class _TIUpdate:
    """``UPDATE task_instance SET <columns> WHERE <its key>`` for many rows at once.

    Rows are tuples: the new values in ``columns`` order, then run pk, task id and map
    index. Everywhere but MySQL: one executemany of the compiled statement. MySQL:
    one statement per MYSQL_CHUNK rows, the task instances joined to a derived table
    of their new values.
    """

    def __init__(self, dialect: Dialect, columns: tuple[str, ...]) -> None:
        ti = task_instance.c
        statement = (
            update(task_instance)
            .where(
                and_(
                    ti.dag_run_id == bindparam("b_run"),
                    ti.task_id == bindparam("b_task"),
                    ti.map_index == bindparam("b_index"),
                )
            )
            .values({name: bindparam(name) for name in columns})
        )
        self.sql, order = _compiled(statement, dialect)
        names = (*columns, "b_run", "b_task", "b_index")
        assert order == names, order
        self.mysql = dialect.name in ("mysql", "mariadb")
        q = dialect.identifier_preparer.quote
        self._first = "SELECT " + ", ".join(f"%s AS {q(c)}" for c in names)
        self._rest = "SELECT " + ", ".join("%s" for _ in names)
        self._set = ", ".join(f"t.{q(c)} = v.{q(c)}" for c in columns)

    async def __call__(self, conn: AsyncConnection, params: list[tuple[Any, ...]]) -> None:
        if not self.mysql:
            await conn.exec_driver_sql(self.sql, params)
            return
        for start in range(0, len(params), MYSQL_CHUNK):
            chunk = params[start : start + MYSQL_CHUNK]
            await conn.exec_driver_sql(self._mysql(len(chunk)), _flat(chunk))

    def _mysql(self, n: int) -> str:
        values = " UNION ALL ".join([self._first] + [self._rest] * (n - 1))
        return (
            f"UPDATE task_instance AS t JOIN ({values}) AS v "
            "ON t.dag_run_id = v.b_run AND t.task_id = v.b_task AND t.map_index = v.b_index "
            f"SET {self._set}"
        )


class LeanWriter:
    """The scheduler's hot statements, compiled for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.dt: Convert = _sqlite_datetime if dialect.name == "sqlite" else _naive_utc
        self._update_ti = _TIUpdate(dialect, (*TI_MUTABLE, "updated_at"))
        self._start_ti = GuardedStarts(dialect, (*TI_MUTABLE, "updated_at"))
        self._update_checkpoint = _TIUpdate(dialect, ("checkpoint", "updated_at"))
        self.insert_log = _insert(
            task_log,
            ("dag_run_id", "task_id", "map_index", "try_number", "path", "created_at"),
            dialect,
        )
        self.insert_rendered = _insert(
            rendered_task_instance_fields,
            ("dag_run_id", "task_id", "map_index", "try_number", "rendered_fields", "created_at"),
            dialect,
        )
        self.insert_xcom = _insert(
            xcom,
            ("dag_run_id", "task_id", "map_index", "key", "value", "size", "created_at"),
            dialect,
        )

    async def rendered(
        self, conn: AsyncConnection, rows: Sequence[RenderedRow], now: datetime
    ) -> None:
        created = self.dt(now)
        await conn.exec_driver_sql(
            self.insert_rendered,
            [(r.run_pk, r.task_id, r.map_index, r.try_number, r.fields, created) for r in rows],
        )

    async def ti_updates(
        self, conn: AsyncConnection, rows: Sequence[TIUpdate], now: datetime
    ) -> list[RefusedStart]:
        """Write the rows; return the starts among them that were refused."""
        dt = self.dt
        updated = dt(now)
        plain: list[tuple[Any, ...]] = []
        starts: list[TIUpdate] = []
        guarded: list[tuple[Any, ...]] = []
        for u in rows:
            values = (
                u.state.value,
                u.try_number,
                dt(u.queued_at),
                dt(u.start_date),
                dt(u.end_date),
                u.duration,
                u.hostname,
                u.executor,
                dt(u.next_retry_at),
                u.error,
                u.rendered_map_index,
                updated,
                u.run_pk,
                u.task_id,
                u.map_index,
            )
            if u.guard is None:
                plain.append(values)
            else:
                starts.append(u)
                guarded.append((*values, u.guard))
        if plain:
            await self._update_ti(conn, plain)
        if not starts:
            return []
        return await self._start_ti(conn, starts, guarded)

    async def checkpoints(
        self, conn: AsyncConnection, rows: Sequence[CheckpointRow], now: datetime
    ) -> None:
        # The JSON column's value is JSON text on every backend (what SQLAlchemy's JSON
        # type would send too).
        updated = self.dt(now)
        await self._update_checkpoint(
            conn,
            [(json.dumps(r.checkpoint), updated, r.run_pk, r.task_id, r.map_index) for r in rows],
        )

    async def logs(self, conn: AsyncConnection, rows: Sequence[LogRow], now: datetime) -> None:
        created = self.dt(now)
        await conn.exec_driver_sql(
            self.insert_log,
            [(r.run_pk, r.task_id, r.map_index, r.try_number, r.path, created) for r in rows],
        )

    async def xcoms(self, conn: AsyncConnection, rows: Sequence[XComRow], now: datetime) -> None:
        created = self.dt(now)
        await conn.exec_driver_sql(
            self.insert_xcom,
            [
                (x.run_pk, x.task_id, x.map_index, x.key, x.value, len(x.value), created)
                for x in rows
            ],
        )


def _flat(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(value for row in rows for value in row)
