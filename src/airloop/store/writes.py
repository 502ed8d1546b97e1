"""The lean write path: a tick's rows straight to the driver, as tuples.

The scheduler writes tens of thousands of rows a second. Going through SQLAlchemy's
``execute(statement, [dict, ...])`` costs, per row, a parameter dict, the compiled
statement's parameter processing and three Python calls per datetime (the type
decorator, then the dialect's own processor). Here each statement is compiled once
per dialect (SQLAlchemy does the SQL and the paramstyle), rows are plain tuples in
the compiled order, and the one conversion the driver cannot do -- aware UTC
datetimes to what the column stores -- is done once per distinct datetime of a batch
(a tick's rows share its timestamps: every task queued in a tick has the same
``queued_at``).

Task-instance updates, plain and guarded, go through one multi-row statement
(airloop.store.ti_statement: ``UPDATE ... FROM (VALUES ...)`` on PostgreSQL, ``UPDATE
... JOIN`` on MySQL/MariaDB, executemany on SQLite). Rows that start a try carry a
guard and go through the guarded form (airloop.store.starts); the writer says which of
them it refused. A new run's task instances are inserted here too (one executemany of
tuples).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from airloop.core.states import TaskState
from airloop.store.records import (
    CheckpointRow,
    LogRow,
    NewTaskInstance,
    RefusedStart,
    RenderedRow,
    TIUpdate,
    XComRow,
)
from airloop.store.schema import rendered_task_instance_fields, task_instance, task_log, xcom
from airloop.store.starts import GuardedStarts
from airloop.store.ti_statement import TIUpdateStatement

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
#: A new task instance's columns, in the order of LeanWriter.new_task_instances' tuples.
TI_NEW = (
    "dag_run_id",
    "task_id",
    "map_index",
    "state",
    "try_number",
    "max_tries",
    "pool",
    "pool_slots",
    "priority_weight",
    "operator",
    "updated_at",
)

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


class LeanWriter:
    """The scheduler's hot statements, compiled for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.dt: Convert = _sqlite_datetime if dialect.name == "sqlite" else _naive_utc
        self._update_ti = TIUpdateStatement(dialect, (*TI_MUTABLE, "updated_at"), guarded=False)
        self._start_ti = GuardedStarts(dialect, (*TI_MUTABLE, "updated_at"))
        self._update_checkpoint = TIUpdateStatement(
            dialect, ("checkpoint", "updated_at"), guarded=False
        )
        self.insert_ti = _insert(task_instance, TI_NEW, dialect)
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

    async def new_task_instances(
        self,
        conn: AsyncConnection,
        run_pk: int,
        rows: Sequence[NewTaskInstance],
        now: datetime,
    ) -> None:
        """Insert a new run's task instances (state ``none``, map index -1, no try)."""
        updated = self.dt(now)
        none = TaskState.NONE.value
        await conn.exec_driver_sql(
            self.insert_ti,
            [
                (
                    run_pk,
                    ti.task_id,
                    -1,
                    none,
                    0,
                    ti.max_tries,
                    ti.pool,
                    ti.pool_slots,
                    ti.priority_weight,
                    ti.operator,
                    updated,
                )
                for ti in rows
            ],
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
        dt = _memo(self.dt)
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


def _memo(convert: Convert) -> Convert:
    """``convert`` computed once per distinct datetime (for one batch: its rows share
    the tick's timestamps)."""
    done: dict[datetime, Any] = {}

    def dt(value: datetime | None) -> Any:
        if value is None:
            return None
        out = done.get(value)
        if out is None:
            out = done[value] = convert(value)
        return out

    return dt
