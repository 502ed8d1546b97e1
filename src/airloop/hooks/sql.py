"""``DbApiHook``: the async base of the SQL hooks, their pools and their errors.

The hooks talk to the databases through the async drivers directly (asyncpg, asyncmy,
aiosqlite; ADR 0035): ``await hook.get_records(sql, parameters)``, ``get_first``,
``run`` and ``insert_rows`` are Airflow's ``DbApiHook`` methods as coroutines.

Connections come from a bounded pool per (hook type, connection id, database) that
every task of the engine shares, created on first use and closed when the engine
stops (it is one of the engine's resources, as the AWS hub is). Code running on
another event loop (an ``async def`` task on the thread executor, a script outside an
engine) gets a connection of its own for each call, closed at the end of the call:
a driver connection belongs to the loop that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import importlib
import logging
import math
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from airloop.connections import Connection, InvalidConnection
from airloop.exceptions import AirloopError
from airloop.hooks.base import BaseHook
from airloop.runtime import current_resources
from airloop.settings import SqlSettings

log = logging.getLogger("airloop.task.sql")

#: The key of the pools in the engine's resources.
RESOURCE_KEY = "sql"
#: Seconds a connection gets to close politely before its socket is dropped.
CLOSE_TIMEOUT = 5.0


class SqlError(AirloopError):
    """A statement failed: the message names the connection, the statement's first line
    and the database's own message, on one line."""

    def __init__(self, conn_id: str, statement: str, message: str) -> None:
        self.conn_id = conn_id
        self.statement = statement
        self.db_message = message
        super().__init__(f"{conn_id}: {statement_head(statement)!r} failed: {message}")


class SqlConnectionError(AirloopError):
    """The database could not be reached or refused the connection's credentials."""


def statement_head(statement: str, width: int = 120) -> str:
    """The first non-empty line of a statement, cut at ``width`` characters."""
    for line in statement.strip().splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= width else line[: width - 3] + "..."
    return ""


def one_line(message: str) -> str:
    return " ".join(str(message).split())


class DriverMissing(AirloopError):
    """A hook's driver is not installed (an optional extra)."""


def import_driver(module: str, hook: str, extra: str) -> Any:
    """The driver module, imported when first needed (asyncpg and asyncmy are extras)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DriverMissing(
            f"{hook} needs the {module} driver: pip install 'airloop[{extra}]'"
        ) from None


def loaded_driver(module: str) -> Any:
    """The driver module if something imported it already, else None (then none of
    its exceptions can exist)."""
    return sys.modules.get(module)


# -- reading SQL text: what is code, what is quoted -----------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[\w$]")


def code_mask(
    sql: str,
    *,
    dollar_quotes: bool = False,
    backslash_escapes: bool = False,
    hash_comments: bool = False,
) -> list[bool]:
    """For each character of ``sql``: True when it is code, False inside a string
    literal, a quoted identifier or a comment (``--``, ``/* */``; PostgreSQL's
    ``$tag$...$tag$`` with ``dollar_quotes``; MySQL's ``\\'`` escapes with
    ``backslash_escapes`` and ``#`` comments with ``hash_comments``)."""
    code = [True] * len(sql)
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        end = -1
        if c in "'\"`":
            j = i + 1
            while j < n:
                if backslash_escapes and sql[j] == "\\" and c != "`":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
        elif (c == "-" and sql.startswith("--", i)) or (c == "#" and hash_comments):
            j = sql.find("\n", i)
            end = n if j < 0 else j
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            end = n if j < 0 else j + 2
        elif c == "$" and dollar_quotes and not (i and _WORD.match(sql[i - 1])):
            match = _DOLLAR_TAG.match(sql, i)
            if match is not None:
                j = sql.find(match.group(0), match.end())
                end = n if j < 0 else j + len(match.group(0))
        if end < 0:
            i += 1
            continue
        for k in range(i, end):
            code[k] = False
        i = end
    return code


def split_sql(sql: str, **rules: bool) -> list[str]:
    """The statements of a script: split on ``;`` outside strings and comments (the
    dialect's ``rules``: see ``code_mask``; PostgreSQL's by default); pieces with
    nothing but whitespace and comments are dropped."""
    rules.setdefault("dollar_quotes", True)
    mask = code_mask(sql, **rules)
    statements: list[str] = []
    start = 0
    for i, c in enumerate(sql):
        if c == ";" and mask[i]:
            statements.append(sql[start:i])
            start = i + 1
    statements.append(sql[start:])
    kept = []
    for piece in statements:
        body = piece.strip()
        if not body:
            continue
        piece_mask = code_mask(piece, **rules)
        if any(m and not ch.isspace() for m, ch in zip(piece_mask, piece, strict=True)):
            kept.append(body)
    return kept


# -- results: what a handler gets ------------------------------------------------------


class QueryResult:
    """One statement's result, shaped like a DB-API cursor for Airflow-style handlers:
    ``description`` (None when the statement returns no rows), ``rowcount``,
    ``fetchall()``, ``fetchone()``, ``fetchmany(size)``."""

    def __init__(
        self,
        statement: str,
        columns: Sequence[str] | None,
        rows: list[tuple[Any, ...]],
        rowcount: int = -1,
    ) -> None:
        self.statement = statement
        self.description: list[tuple[Any, ...]] | None = (
            None
            if columns is None
            else [(name, None, None, None, None, None, None) for name in columns]
        )
        self.rows = rows
        self.rowcount = rowcount if rowcount >= 0 else (len(rows) if columns is not None else -1)
        self._next = 0

    @property
    def columns(self) -> list[str]:
        return [d[0] for d in self.description or ()]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rest = self.rows[self._next :]
        self._next = len(self.rows)
        return rest

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self.rows):
            return None
        self._next += 1
        return self.rows[self._next - 1]

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        chunk = self.rows[self._next : self._next + size]
        self._next += len(chunk)
        return chunk


def fetch_all_handler(cursor: QueryResult) -> list[tuple[Any, ...]] | None:
    """Airflow's: every row of a statement that returns rows, else None."""
    return cursor.fetchall() if cursor.description is not None else None


def fetch_one_handler(cursor: QueryResult) -> tuple[Any, ...] | None:
    """Airflow's: the first row of a statement that returns rows, else None."""
    return cursor.fetchone() if cursor.description is not None else None


Handler = Callable[[QueryResult], Any]


# -- pools -----------------------------------------------------------------------------


class ConnectionPool:
    """At most ``size`` driver connections, opened on demand and kept idle for reuse.

    A connection whose user raised (a failed statement, a cancellation) is closed,
    not reused: its state is unknown. ``aclose`` closes the idle connections, and the
    busy ones as they are released.
    """

    def __init__(
        self,
        name: str,
        size: int,
        connect: Callable[[], Awaitable[Any]],
        close: Callable[[Any], Awaitable[None]],
        abort: Callable[[Any], None] | None = None,
        usable: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self._connect = connect
        self._close = close
        self._abort = abort
        self._usable = usable
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._busy: set[Any] = set()
        self._closed = False
        #: Connections opened over the pool's life (reuse shows as opened < calls).
        self.opened = 0

    @property
    def open_count(self) -> int:
        return len(self._idle) + len(self._busy)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        if self._closed:
            raise AirloopError(f"the SQL pool of {self.name} is closed (the engine stopped)")
        async with self._slots:
            raw = None
            while self._idle and raw is None:
                raw = self._idle.pop()
                if self._usable is not None and not self._usable(raw):
                    # The server or the network closed it while idle (a restart, an
                    # idle timeout): drop it, take another or open a new one.
                    await self._discard(raw)
                    raw = None
            if raw is None:
                raw = await self._connect()
                self.opened += 1
            self._busy.add(raw)
            ended: BaseException | None = None
            try:
                yield raw
            except BaseException as exc:
                ended = exc
                raise
            finally:
                self._busy.discard(raw)
                if ended is None and not self._closed:
                    self._idle.append(raw)
                else:
                    # After an error the connection's state is unknown; after a
                    # cancellation it may be mid-statement: abort it, do not wait.
                    await self._discard(raw, graceful=isinstance(ended, Exception | None))

    async def _discard(self, raw: Any, graceful: bool = True) -> None:
        if graceful or self._abort is None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._close(raw)
                return
            except Exception as exc:  # noqa: BLE001 - a broken connection: abort it below
                log.debug("closing a connection of %s: %s", self.name, exc)
            if self._abort is None:
                return
        try:
            self._abort(raw)
        except Exception as exc:  # noqa: BLE001 - best effort: the socket is dropped anyway
            log.debug("aborting a connection of %s: %s", self.name, exc)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for raw in idle:
            await self._discard(raw)


class SqlPools:
    """The engine's SQL pools, one per (hook type, connection id, database), all on
    the loop the engine runs on (``home``)."""

    def __init__(self, settings: SqlSettings, home: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.home = home
        self.pools: dict[tuple[str, str, str | None], ConnectionPool] = {}

    async def aclose(self) -> None:
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            await pool.aclose()


async def engine_pools() -> SqlPools | None:
    """The running engine's SQL pools, None outside an engine."""
    resources = current_resources.get()
    if resources is None:
        return None
    loop = asyncio.get_running_loop()
    home = getattr(resources, "loop", None) or loop
    if home is not loop:
        return None  # another loop's code (the thread executor): not the engine's pools

    async def create(settings: Any) -> SqlPools:
        return SqlPools(settings.sql, home)

    pools: SqlPools = await resources.get(RESOURCE_KEY, create)
    return pools


# -- the hook --------------------------------------------------------------------------


class DbApiHook(BaseHook):
    """An async client for one SQL database, named by a connection id.

    ``schema`` overrides the connection's database; ``log_sql`` logs each statement
    before it runs; ``pool_size`` bounds the shared pool (else the connection's extra
    ``pool_size``, else the ``sql.pool_size`` setting: the first hook to open the
    pool of a connection id decides its size).
    """

    #: The connection types this hook serves (Airflow's names first).
    conn_types: ClassVar[tuple[str, ...]] = ()
    #: The placeholder ``insert_rows`` writes.
    placeholder: ClassVar[str] = "%s"
    #: How this dialect's text quotes and comments (see ``code_mask``).
    text_rules: ClassVar[dict[str, bool]] = {"dollar_quotes": False}
    #: The driver's errors that are a statement's failure (wrapped into SqlError).
    _hooks: ClassVar[dict[str, type[DbApiHook]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.conn_types:
            DbApiHook._hooks[name] = cls

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        schema: str | None = None,
        log_sql: bool = True,
        pool_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        named = kwargs.pop(self.conn_name_attr, None) if self.conn_name_attr != "conn_id" else None
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unknown argument(s) {', '.join(sorted(kwargs))}; "
                f"it takes {self.conn_name_attr}, schema, log_sql, pool_size"
            )
        if conn_id is not None and named is not None and conn_id != named:
            raise TypeError(
                f"{type(self).__name__}: conn_id={conn_id!r} and "
                f"{self.conn_name_attr}={named!r} disagree"
            )
        chosen = conn_id or named or getattr(type(self), "default_conn_name", None)
        if not chosen or not isinstance(chosen, str):
            raise TypeError(f"{type(self).__name__} needs a connection id ({self.conn_name_attr})")
        if pool_size is not None and (not isinstance(pool_size, int) or pool_size < 1):
            raise ValueError(f"{type(self).__name__}: pool_size must be >= 1, got {pool_size!r}")
        self.conn_id: str = chosen
        self.schema = schema
        self.log_sql = log_sql
        self.pool_size = pool_size
        self._connection: Connection | None = None

    @classmethod
    def for_conn_type(cls, conn_type: str | None) -> type[DbApiHook]:
        """The hook class for a connection type (``postgres``, ``mysql``, ``sqlite``...)."""
        found = cls._hooks.get((conn_type or "").lower())
        if found is None:
            raise InvalidConnection(
                f"no SQL hook for connection type {conn_type!r}; "
                f"known: {', '.join(sorted(cls._hooks))}"
            )
        return found

    @classmethod
    async def for_connection(cls, conn_id: str, **hook_params: Any) -> DbApiHook:
        """The right hook for ``conn_id``, by its connection type (as Airflow's
        ``Connection.get_hook``)."""
        conn = await cls.aget_connection(conn_id)
        hook = cls.for_conn_type(conn.conn_type)(conn_id, **hook_params)
        hook._connection = conn
        return hook

    async def get_connection_config(self) -> Connection:
        """The connection, looked up once per hook, checked against the hook's types."""
        if self._connection is None:
            conn = await self.aget_connection(self.conn_id)
            if (conn.conn_type or "").lower() not in self.conn_types:
                raise InvalidConnection(
                    f"connection {self.conn_id!r} has conn_type {conn.conn_type!r}: "
                    f"{type(self).__name__} takes {', '.join(self.conn_types)}"
                )
            self._connection = conn
        return self._connection

    # -- what each driver provides --------------------------------------------------

    async def _connect(self, conn: Connection) -> Any:
        raise NotImplementedError

    async def _close(self, raw: Any) -> None:
        raise NotImplementedError

    #: Whether ``_abort`` drops a connection at once (else it is always closed politely).
    can_abort: ClassVar[bool] = True

    def _abort(self, raw: Any) -> None:
        """Drop the connection at once (no round trip): after a cancellation."""
        raise NotImplementedError

    def _usable(self, raw: Any) -> bool:
        """Whether an idle pooled connection is still open (checked before reuse)."""
        return True

    async def _begin(self, raw: Any) -> None:
        raise NotImplementedError

    async def _commit(self, raw: Any) -> None:
        raise NotImplementedError

    async def _rollback(self, raw: Any) -> None:
        raise NotImplementedError

    async def _set_autocommit(self, raw: Any, autocommit: bool) -> None:
        """Before a run: the driver's autocommit mode (a no-op where BEGIN decides)."""

    async def _execute(self, raw: Any, statement: str, parameters: Any, fetch: bool) -> QueryResult:
        raise NotImplementedError

    async def _executemany(self, raw: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _driver_message(self, exc: BaseException) -> str | None:
        """The database's message when ``exc`` is the failure of a statement, else None."""
        raise NotImplementedError

    def _where(self, conn: Connection) -> str:
        return f"{conn.host or 'localhost'}:{conn.port or ''}/{self.schema or conn.schema or ''}"

    # -- connections ----------------------------------------------------------------

    async def _open(self) -> Any:
        conn = await self.get_connection_config()
        try:
            return await self._connect(conn)
        except (TimeoutError, OSError) as exc:
            raise SqlConnectionError(
                f"cannot connect to {self.conn_id!r} ({conn.conn_type} at {self._where(conn)}): "
                f"{one_line(str(exc)) or type(exc).__name__}"
            ) from None
        except Exception as exc:
            message = self._driver_message(exc)
            if message is None:
                raise
            raise SqlConnectionError(
                f"cannot connect to {self.conn_id!r} ({conn.conn_type} at {self._where(conn)}): "
                f"{message}"
            ) from None

    async def _pool_size(self, pools: SqlPools) -> int:
        if self.pool_size is not None:
            return self.pool_size
        extra = (await self.get_connection_config()).extra_dejson
        if "pool_size" in extra:
            try:
                size = int(extra["pool_size"])
            except (TypeError, ValueError):
                size = 0
            if size < 1:
                raise InvalidConnection(
                    f"connection {self.conn_id!r}: extra pool_size must be an integer >= 1, "
                    f"got {extra['pool_size']!r}"
                )
            return size
        return pools.settings.pool_size

    async def pool(self) -> ConnectionPool | None:
        """The engine's shared pool for this connection, None when there is none to
        use (outside an engine, or on a loop other than the engine's)."""
        pools = await engine_pools()
        if pools is None or pools.home is not asyncio.get_running_loop():
            return None
        key = (type(self).__name__, self.conn_id, self.schema)
        found = pools.pools.get(key)
        if found is None:
            size = await self._pool_size(pools)
            found = pools.pools.get(key)  # another task may have made it meanwhile
            if found is None:
                found = ConnectionPool(
                    f"{type(self).__name__}({self.conn_id!r})",
                    size,
                    self._open,
                    self._close,
                    self._abort if self.can_abort else None,
                    self._usable,
                )
                pools.pools[key] = found
        return found

    @contextlib.asynccontextmanager
    async def get_conn(self) -> AsyncIterator[Any]:
        """A driver connection for the block: from the shared pool, or one of its own."""
        pool = await self.pool()
        if pool is not None:
            async with pool.acquire() as raw:
                yield raw
            return
        raw = await self._open()
        try:
            yield raw
        except BaseException as exc:
            if self.can_abort and not isinstance(exc, Exception):
                with contextlib.suppress(Exception):
                    self._abort(raw)
                raise
            await self._close_quietly(raw)
            raise
        await self._close_quietly(raw)

    async def _close_quietly(self, raw: Any) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._close(raw)
        except Exception as exc:  # noqa: BLE001 - a broken connection: dropped anyway
            log.debug("closing a connection of %s: %s", self.conn_id, exc)
            if self.can_abort:
                with contextlib.suppress(Exception):
                    self._abort(raw)

    # -- Airflow's API ----------------------------------------------------------------

    def _statements(self, sql: str | Iterable[str], split_statements: bool | None) -> list[str]:
        if isinstance(sql, str):
            if split_statements is False:
                return [sql.strip()] if sql.strip() else []
            return split_sql(sql, **self.text_rules)
        statements = []
        for item in sql:
            if not isinstance(item, str):
                raise TypeError(f"sql must be a string or a list of strings, got {item!r} in it")
            if item.strip():
                statements.append(item.strip())
        return statements

    async def run(
        self,
        sql: str | Iterable[str],
        autocommit: bool = False,
        parameters: Any = None,
        handler: Handler | None = None,
        split_statements: bool | None = None,
        return_last: bool = True,
    ) -> Any:
        """Run one statement or several, on one connection, in one transaction unless
        ``autocommit`` (then each statement commits by itself).

        ``split_statements``: None (the default) splits a string holding several
        statements on ``;``; False sends it to the driver whole; True splits. With a
        ``handler``, returns its result for the last statement of a string (all of
        them, as a list, with ``return_last=False`` or when ``sql`` is a list), as
        Airflow does; without one, None.
        """
        single = isinstance(sql, str)
        statements = self._statements(sql, split_statements)
        if not statements:
            raise ValueError(f"{type(self).__name__}.run: no SQL statement to run")
        results: list[Any] = []
        async with self.get_conn() as raw:
            await self._set_autocommit(raw, autocommit)
            if not autocommit:
                await self._begin(raw)
            try:
                for statement in statements:
                    if self.log_sql:
                        log.info("running statement: %s  parameters: %s", statement, parameters)
                    result = await self._run_one(raw, statement, parameters, handler is not None)
                    if handler is not None:
                        results.append(handler(result))
                if not autocommit:
                    await self._commit(raw)
            except BaseException:
                if not autocommit:
                    with contextlib.suppress(Exception):
                        await self._rollback(raw)
                raise
        if handler is None:
            return None
        if single and (return_last or split_statements is False):
            return results[-1]
        return results

    async def _run_one(self, raw: Any, statement: str, parameters: Any, fetch: bool) -> QueryResult:
        try:
            return await self._execute(raw, statement, parameters, fetch)
        except Exception as exc:
            message = self._driver_message(exc)
            if message is None:
                raise
            raise SqlError(self.conn_id, statement, message) from exc

    async def get_records(self, sql: str | Iterable[str], parameters: Any = None) -> Any:
        """Every row of the statement (a list of tuples); a list of those for a list."""
        return await self.run(sql, parameters=parameters, handler=fetch_all_handler)

    async def get_first(self, sql: str | Iterable[str], parameters: Any = None) -> Any:
        """The first row of the statement (a tuple, or None when there is none)."""
        return await self.run(sql, parameters=parameters, handler=fetch_one_handler)

    def _insert_statement(
        self,
        table: str,
        target_fields: Sequence[str] | None,
        width: int,
        replace: bool,
        replace_index: Sequence[str] | None,
    ) -> str:
        columns = f" ({', '.join(target_fields)})" if target_fields else ""
        values = ", ".join(self._placeholder(i) for i in range(width))
        verb = "REPLACE INTO" if replace else "INSERT INTO"
        return f"{verb} {table}{columns} VALUES ({values})"

    def _placeholder(self, index: int) -> str:
        return self.placeholder

    async def insert_rows(
        self,
        table: str,
        rows: Iterable[Sequence[Any]],
        target_fields: Sequence[str] | None = None,
        commit_every: int = 1000,
        replace: bool = False,
        *,
        replace_index: Sequence[str] | str | None = None,
        executemany: bool = True,
    ) -> int:
        """Insert ``rows`` into ``table`` (one executemany per ``commit_every`` rows, each
        committed); ``replace`` overwrites rows with the same key (MySQL's REPLACE,
        SQLite's INSERT OR REPLACE, PostgreSQL's ON CONFLICT (``replace_index``) DO
        UPDATE). Returns the number of rows written. ``executemany`` is accepted for
        Airflow's sake and changes nothing: rows always go in executemany batches."""
        if commit_every < 1:
            raise ValueError(f"insert_rows: commit_every must be >= 1, got {commit_every}")
        index = [replace_index] if isinstance(replace_index, str) else replace_index
        batch: list[tuple[Any, ...]] = []
        written = 0
        statement: str | None = None
        async with self.get_conn() as raw:
            await self._set_autocommit(raw, False)

            async def flush() -> None:
                nonlocal written
                assert statement is not None
                await self._begin(raw)
                try:
                    await self._executemany(raw, statement, batch)
                    await self._commit(raw)
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        await self._rollback(raw)
                    message = self._driver_message(exc) if isinstance(exc, Exception) else None
                    if message is not None:
                        raise SqlError(self.conn_id, statement, message) from exc
                    raise
                written += len(batch)
                batch.clear()

            for row in rows:
                values = tuple(row)
                if statement is None:
                    statement = self._insert_statement(
                        table, target_fields, len(values), replace, index
                    )
                    if self.log_sql:
                        log.info("inserting rows with: %s", statement)
                batch.append(values)
                if len(batch) >= commit_every:
                    await flush()
            if batch:
                await flush()
        log.info("inserted %d row(s) into %s", written, table)
        return written


def parameters_kind(parameters: Any) -> str:
    """``"none"``, ``"mapping"`` or ``"sequence"``; anything else is an error."""
    if parameters is None:
        return "none"
    if isinstance(parameters, Mapping):
        return "mapping"
    if isinstance(parameters, (list, tuple)):
        return "sequence"
    raise TypeError(
        f"parameters must be a list, a tuple or a dict, got {type(parameters).__name__}"
    )


# -- results as XCom -------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A query result as JSON keeps it: tuples become lists; NUMERIC an int when whole,
    a float when one holds it exactly, else its text; dates and times ISO 8601 text;
    intervals seconds; UUIDs text; bytes hex text; NaN and infinities their text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return str(value)  # UUID, IP addresses, ranges...
