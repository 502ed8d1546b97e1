"""Connections and variables in the metadata database: records in, records out.

The store keeps text: encrypting ``password``/``extra``/``val`` (and the flags saying
so) is the connections layer's job (ADR 0031). The engine is unpooled (NullPool) so a
lookup can run on any event loop -- the scheduler's, or a worker thread's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from airloop.exceptions import AirloopError, DatabaseError
from airloop.store.database import create_engine, open_engine
from airloop.store.errors import begin, connect, driver_errors
from airloop.store.records import ConnectionRecord, VariableRecord
from airloop.store.schema import connection, variable


class RecordExistsError(AirloopError):
    """Adding a connection or variable whose id is taken (without overwriting)."""


_CONN_COLUMNS = tuple(ConnectionRecord.__dataclass_fields__)
_VAR_COLUMNS = tuple(VariableRecord.__dataclass_fields__)


def _conn(row: Any) -> ConnectionRecord:
    values = dict(row._mapping)
    values["is_encrypted"] = bool(values["is_encrypted"])
    values["is_extra_encrypted"] = bool(values["is_extra_encrypted"])
    return ConnectionRecord(**values)


def _var(row: Any) -> VariableRecord:
    values = dict(row._mapping)
    values["is_encrypted"] = bool(values["is_encrypted"])
    return VariableRecord(**values)


class ConnectionStore:
    """The ``connection`` and ``variable`` tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str, *, auto_migrate: bool = True) -> ConnectionStore:
        """The store at ``url`` (created when empty, as ``Store.open``), unpooled."""
        return cls(await open_engine(url, auto_migrate=auto_migrate, pooled=False))

    async def close(self) -> None:
        await self.engine.dispose()

    # -- connections ----------------------------------------------------------------

    async def get_connection(self, conn_id: str) -> ConnectionRecord | None:
        c = connection.c
        query = select(*(c[name] for name in _CONN_COLUMNS)).where(c.conn_id == conn_id)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _conn(row)

    async def connections(self) -> list[ConnectionRecord]:
        c = connection.c
        query = select(*(c[name] for name in _CONN_COLUMNS)).order_by(c.conn_id)
        async with connect(self.engine) as conn:
            return [_conn(r) for r in await conn.execute(query)]

    async def add_connections(
        self, records: Sequence[ConnectionRecord], *, overwrite: bool = False
    ) -> None:
        """Insert (or with ``overwrite`` replace) in one transaction; RecordExistsError
        naming the first id taken otherwise."""
        await self._put(connection, "conn_id", [asdict(r) for r in records], overwrite)

    async def delete_connection(self, conn_id: str) -> bool:
        async with begin(self.engine) as conn:
            result = await conn.execute(delete(connection).where(connection.c.conn_id == conn_id))
        return bool(result.rowcount)

    # -- variables ------------------------------------------------------------------

    async def get_variable(self, key: str) -> VariableRecord | None:
        c = variable.c
        query = select(*(c[name] for name in _VAR_COLUMNS)).where(c.key == key)
        async with connect(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _var(row)

    async def variables(self) -> list[VariableRecord]:
        c = variable.c
        query = select(*(c[name] for name in _VAR_COLUMNS)).order_by(c.key)
        async with connect(self.engine) as conn:
            return [_var(r) for r in await conn.execute(query)]

    async def set_variables(
        self, records: Sequence[VariableRecord], *, overwrite: bool = True
    ) -> None:
        """Insert or replace (``Variable.set``) in one transaction; without
        ``overwrite`` an existing key is a RecordExistsError."""
        await self._put(variable, "key", [asdict(r) for r in records], overwrite)

    async def delete_variable(self, key: str) -> bool:
        async with begin(self.engine) as conn:
            result = await conn.execute(delete(variable).where(variable.c.key == key))
        return bool(result.rowcount)

    # -- both -----------------------------------------------------------------------

    async def _put(
        self, table: Any, id_column: str, rows: list[dict[str, Any]], overwrite: bool
    ) -> None:
        if not rows:
            return
        column = table.c[id_column]
        ids = [r[id_column] for r in rows]
        async with begin(self.engine) as conn:
            existing = {r[0] for r in await conn.execute(select(column).where(column.in_(ids)))}
            taken = [i for i in ids if i in existing]
            if taken and not overwrite:
                what = "connection" if table is connection else "variable"
                raise RecordExistsError(f"{what} {taken[0]!r} already exists")
            for row in rows:
                if row[id_column] in existing:
                    values = {k: v for k, v in row.items() if k != id_column}
                    await conn.execute(update(table).where(column == row[id_column]).values(values))
            new = [r for r in rows if r[id_column] not in existing]
            if new:
                await conn.execute(insert(table), new)

    async def rewrite_secrets(
        self,
        connection_fn: Callable[[ConnectionRecord], ConnectionRecord],
        variable_fn: Callable[[VariableRecord], VariableRecord],
    ) -> tuple[int, int]:
        """Apply the functions to every row and write the results, in ONE transaction
        (key rotation: all rows or none). Returns (connections, variables) rewritten."""
        cc, vc = connection.c, variable.c
        async with begin(self.engine) as conn:
            conns = [_conn(r) for r in await conn.execute(select(*(cc[n] for n in _CONN_COLUMNS)))]
            variables = [
                _var(r) for r in await conn.execute(select(*(vc[n] for n in _VAR_COLUMNS)))
            ]
            for record in conns:
                new = connection_fn(record)
                if new != record:
                    values = asdict(replace(new, conn_id=record.conn_id))
                    del values["conn_id"]
                    await conn.execute(
                        update(connection).where(cc.conn_id == record.conn_id).values(values)
                    )
            for var in variables:
                new_var = variable_fn(var)
                if new_var != var:
                    values = asdict(replace(new_var, key=var.key))
                    del values["key"]
                    await conn.execute(update(variable).where(vc.key == var.key).values(values))
        return len(conns), len(variables)


async def ping_database(url: str) -> str:
    """``SELECT 1`` on the database at ``url`` (a connection's test); returns the
    server's dialect name, or DatabaseError with the driver's first line."""
    engine = create_engine(url, pooled=False)
    try:
        with driver_errors():
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return engine.dialect.name
    except DatabaseError as exc:
        raise DatabaseError(f"cannot connect: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a driver's own connect errors (refused, auth)
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"cannot connect: {line}") from None
    finally:
        await engine.dispose()
