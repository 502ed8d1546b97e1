"""The metadata database as a source (the last one looked up) and where writes go.

Passwords, extras and variable values are encrypted here before the store sees them
and decrypted here after it returns them (``crypto.Crypto``); the store keeps text.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import replace

from airloop.connections.crypto import Crypto
from airloop.connections.model import Connection
from airloop.store.connections import ConnectionStore
from airloop.store.records import ConnectionRecord, VariableRecord


def _conn_what(conn_id: str) -> str:
    return f"connection {conn_id!r}"


def _var_what(key: str) -> str:
    return f"variable {key!r}"


class MetastoreSource:
    """Connections and variables in the metadata database at ``database_url``."""

    name = "metadata database"

    def __init__(
        self, database_url: str, fernet_key: str = "", *, store: ConnectionStore | None = None
    ) -> None:
        """``store``: use this open store (the API server's, on its own pool) instead
        of opening one on first use."""
        self.database_url = database_url
        self.crypto = Crypto(fernet_key)
        self._store: ConnectionStore | None = store
        #: One opener per event loop: 10,000 tasks looking up at once open it once.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def store(self) -> ConnectionStore:
        """The store, opened on first use (unpooled: usable from any event loop)."""
        store = self._store
        if store is not None:
            return store
        # Two first lookups at once on different loops (rare) may both open one:
        # harmless, an unpooled engine holds no connection.
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._store is None:
                self._store = await ConnectionStore.open(self.database_url)
            return self._store

    async def aclose(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    # -- the conversions (encryption at rest) ---------------------------------------

    def to_record(self, conn: Connection) -> ConnectionRecord:
        what = _conn_what(conn.conn_id)
        password = conn.password
        extra = conn.extra or None
        return ConnectionRecord(
            conn_id=conn.conn_id,
            conn_type=conn.conn_type,
            description=conn.description,
            host=conn.host,
            schema=conn.schema,
            login=conn.login,
            password=None if password is None else self.crypto.encrypt(password, what),
            port=conn.port,
            extra=None if extra is None else self.crypto.encrypt(extra, what),
            is_encrypted=password is not None,
            is_extra_encrypted=extra is not None,
        )

    def from_record(self, record: ConnectionRecord) -> Connection:
        what = _conn_what(record.conn_id)
        password, extra = record.password, record.extra
        if password is not None and record.is_encrypted:
            password = self.crypto.decrypt(password, what)
        if extra is not None and record.is_extra_encrypted:
            extra = self.crypto.decrypt(extra, what)
        return Connection(
            conn_id=record.conn_id,
            conn_type=record.conn_type,
            description=record.description,
            host=record.host,
            schema=record.schema,
            login=record.login,
            password=password,
            port=record.port,
            extra=extra,
        )

    def _variable_value(self, record: VariableRecord) -> str | None:
        if record.val is not None and record.is_encrypted:
            return self.crypto.decrypt(record.val, _var_what(record.key))
        return record.val

    # -- SecretsSource --------------------------------------------------------------

    async def get_connection(self, conn_id: str) -> Connection | None:
        record = await (await self.store()).get_connection(conn_id)
        return None if record is None else self.from_record(record)

    async def get_variable(self, key: str) -> str | None:
        record = await (await self.store()).get_variable(key)
        return None if record is None else self._variable_value(record)

    # -- reads and writes of the CLI and Variable.set -------------------------------

    async def connections(self) -> list[Connection]:
        return [self.from_record(r) for r in await (await self.store()).connections()]

    async def add_connections(
        self, connections: Sequence[Connection], *, overwrite: bool = False
    ) -> None:
        records = [self.to_record(c) for c in connections]
        await (await self.store()).add_connections(records, overwrite=overwrite)

    async def delete_connection(self, conn_id: str) -> bool:
        return await (await self.store()).delete_connection(conn_id)

    async def variables(self) -> list[tuple[str, str | None, str | None]]:
        """(key, value, description) of every variable."""
        return [
            (r.key, self._variable_value(r), r.description)
            for r in await (await self.store()).variables()
        ]

    async def variable(self, key: str) -> tuple[str, str | None, str | None] | None:
        """(key, value, description) of one variable, None when there is none."""
        record = await (await self.store()).get_variable(key)
        if record is None:
            return None
        return record.key, self._variable_value(record), record.description

    async def set_variables(
        self, values: Sequence[tuple[str, str, str | None]], *, overwrite: bool = True
    ) -> None:
        """(key, value text, description) rows, encrypted, in one transaction."""
        records = [
            VariableRecord(key, self.crypto.encrypt(value, _var_what(key)), description, True)
            for key, value, description in values
        ]
        await (await self.store()).set_variables(records, overwrite=overwrite)

    async def delete_variable(self, key: str) -> bool:
        return await (await self.store()).delete_variable(key)

    async def rotate(self) -> tuple[int, int]:
        """Re-encrypt every secret with the first key (``airloop db rotate-fernet-key``):
        one transaction; rows stored in clear (written without a key) get encrypted."""
        crypto = self.crypto

        def conn(record: ConnectionRecord) -> ConnectionRecord:
            what = _conn_what(record.conn_id)
            password, extra = record.password, record.extra
            if password is not None:
                password = (
                    crypto.rotate(password, what)
                    if record.is_encrypted
                    else crypto.encrypt(password, what)
                )
            if extra is not None:
                extra = (
                    crypto.rotate(extra, what)
                    if record.is_extra_encrypted
                    else crypto.encrypt(extra, what)
                )
            return replace(
                record,
                password=password,
                extra=extra,
                is_encrypted=password is not None,
                is_extra_encrypted=extra is not None,
            )

        def var(record: VariableRecord) -> VariableRecord:
            if record.val is None:
                return record
            what = _var_what(record.key)
            val = (
                crypto.rotate(record.val, what)
                if record.is_encrypted
                else crypto.encrypt(record.val, what)
            )
            return replace(record, val=val, is_encrypted=True)

        return await (await self.store()).rewrite_secrets(conn, var)
