"""``PostgresHook`` on asyncpg.

Parameters: asyncpg's own ``$1, $2`` with a list or tuple; for Airflow's (psycopg2's)
styles, ``%s`` with a list or tuple and ``%(name)s`` with a dict are rewritten to
``$n`` before the statement is sent (``%%`` then stands for ``%``). Placeholders
inside strings, quoted identifiers, ``$tag$`` quotes and comments are left alone.
Values are typed parameters (never spliced into the text); a text value (a rendered
template) for a number, bool, date, time, timestamp or uuid parameter is parsed into
that type first, as the server would parse the literal.

Connection: host, port (5432), login, password, schema (the database); extra
``sslmode`` (disable/allow/prefer/require/verify-ca/verify-full), ``connect_timeout``
(seconds) and ``pool_size``. Other extra keys are not read.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from airloop.connections import Connection, InvalidConnection
from airloop.hooks.sql import (
    DbApiHook,
    QueryResult,
    SqlError,
    code_mask,
    import_driver,
    loaded_driver,
    one_line,
    parameters_kind,
)

_PYFORMAT = re.compile(r"%(?:\((?P<name>[^)]+)\))?s|%%")
_STATUS_COUNT = re.compile(r"(\d+)$")


def to_dollar_params(statement: str, parameters: Any) -> tuple[str, Sequence[Any]]:
    """``statement`` with Airflow's ``%s`` / ``%(name)s`` as ``$n``, and its arguments."""
    kind = parameters_kind(parameters)
    if kind == "none":
        return statement, ()
    mask = code_mask(statement, dollar_quotes=True)
    out: list[str] = []
    args: list[Any] = []
    names: dict[str, int] = {}
    last = 0
    positional = 0
    rewritten = False
    for match in _PYFORMAT.finditer(statement):
        if not mask[match.start()]:
            continue
        out.append(statement[last : match.start()])
        last = match.end()
        text = match.group(0)
        if text == "%%":
            out.append("%")
            continue
        rewritten = True
        name = match.group("name")
        if name is not None:
            if kind != "mapping":
                raise TypeError(f"%({name})s in the statement needs parameters as a dict")
            assert isinstance(parameters, Mapping)
            if name not in parameters:
                raise KeyError(f"parameter {name!r} of the statement is not in parameters")
            if name not in names:
                args.append(parameters[name])
                names[name] = len(args)
            out.append(f"${names[name]}")
        else:
            if kind != "sequence":
                raise TypeError("%s in the statement needs parameters as a list or tuple")
            positional += 1
            out.append(f"${positional}")
    out.append(statement[last:])
    if not rewritten:  # asyncpg's own $n (or no placeholder at all)
        if kind == "mapping":
            raise TypeError("parameters is a dict but the statement has no %(name)s placeholder")
        return statement, tuple(parameters)
    if kind == "sequence":
        if positional != len(parameters):
            raise TypeError(
                f"the statement has {positional} %s placeholder(s) "
                f"but {len(parameters)} parameter(s) were given"
            )
        return "".join(out), tuple(parameters)
    return "".join(out), args


class PostgresHook(DbApiHook):
    """Airflow's ``PostgresHook``: ``PostgresHook(postgres_conn_id="...")``."""

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "postgres"
    hook_name = "Postgres"
    conn_types: ClassVar[tuple[str, ...]] = ("postgres", "postgresql")
    placeholder: ClassVar[str] = "$"
    text_rules: ClassVar[dict[str, bool]] = {"dollar_quotes": True}

    async def _connect(self, conn: Connection) -> Any:
        extra = conn.extra_dejson
        options: dict[str, Any] = {}
        if "sslmode" in extra:
            options["ssl"] = str(extra["sslmode"])
        if "connect_timeout" in extra:
            try:
                options["timeout"] = float(extra["connect_timeout"])
            except (TypeError, ValueError):
                raise InvalidConnection(
                    f"connection {self.conn_id!r}: extra connect_timeout must be seconds, "
                    f"got {extra['connect_timeout']!r}"
                ) from None
        asyncpg = import_driver("asyncpg", "PostgresHook", "postgres")
        return await asyncpg.connect(
            host=conn.host or "localhost",
            port=conn.port or 5432,
            user=conn.login,
            password=conn.password,
            database=self.schema or conn.schema,
            statement_cache_size=0,
            **options,
        )

    async def _close(self, raw: Any) -> None:
        await raw.close(timeout=5)

    def _abort(self, raw: Any) -> None:
        raw.terminate()

    def _usable(self, raw: Any) -> bool:
        return not raw.is_closed()

    async def _begin(self, raw: Any) -> None:
        await raw.execute("BEGIN")

    async def _commit(self, raw: Any) -> None:
        await raw.execute("COMMIT")

    async def _rollback(self, raw: Any) -> None:
        if raw.is_in_transaction():
            await raw.execute("ROLLBACK")

    async def _execute(self, raw: Any, statement: str, parameters: Any, fetch: bool) -> QueryResult:
        text, args = to_dollar_params(statement, parameters)
        if not fetch and not args:
            # The simple protocol: the text may hold several statements (split_statements=False).
            status = await raw.execute(text)
            return QueryResult(statement, None, [], _count(status))
        prepared = await raw.prepare(text)
        if args:
            args = self._typed(statement, prepared.get_parameters(), args)
        records = await prepared.fetch(*args)
        attributes = prepared.get_attributes()
        columns = [a.name for a in attributes] if attributes else None
        return QueryResult(
            statement,
            columns,
            [tuple(r) for r in records],
            _count(prepared.get_statusmsg()),
        )

    def _typed(self, statement: str, types: Sequence[Any], args: Sequence[Any]) -> list[Any]:
        """Text values for typed parameters parsed as the server would parse them (as
        psycopg2's client-side quoting lets Airflow users pass "{{ ds }}" for a date)."""
        typed = list(args)
        for i, (value, kind) in enumerate(zip(typed, types, strict=False)):
            parse = _FROM_TEXT.get(kind.name) if isinstance(value, str) else None
            if parse is None:
                continue
            try:
                typed[i] = parse(value.strip())
            except ValueError:
                raise SqlError(
                    self.conn_id,
                    statement,
                    f"parameter ${i + 1} ({kind.name}): {value!r} is not a valid {kind.name}",
                ) from None
        return typed

    async def _executemany(self, raw: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        await raw.executemany(statement, rows)

    def _placeholder(self, index: int) -> str:
        return f"${index + 1}"

    def _insert_statement(
        self,
        table: str,
        target_fields: Sequence[str] | None,
        width: int,
        replace: bool,
        replace_index: Sequence[str] | None,
    ) -> str:
        base = super()._insert_statement(table, target_fields, width, False, None)
        if not replace:
            return base
        if not target_fields or not replace_index:
            raise ValueError(
                "PostgresHook.insert_rows(replace=True) needs target_fields and replace_index "
                "(the columns of the unique key: ON CONFLICT (...) DO UPDATE)"
            )
        updates = ", ".join(
            f"{col} = excluded.{col}" for col in target_fields if col not in replace_index
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"{base} ON CONFLICT ({', '.join(replace_index)}) {action}"

    def _driver_message(self, exc: BaseException) -> str | None:
        asyncpg = loaded_driver("asyncpg")
        if asyncpg is None:
            return None
        if isinstance(exc, asyncpg.PostgresError):
            message = one_line(str(exc))
            detail = getattr(exc, "detail", None)
            if detail:
                message += f" ({one_line(detail)})"
            return message
        if isinstance(exc, asyncpg.InterfaceError):
            return one_line(str(exc))
        return None


def _decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(text) from None


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("t", "true", "y", "yes", "on", "1"):
        return True
    if lowered in ("f", "false", "n", "no", "off", "0"):
        return False
    raise ValueError(text)


#: How a text value becomes the Python value asyncpg sends for a parameter's type.
_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "int2": int,
    "int4": int,
    "int8": int,
    "oid": int,
    "float4": float,
    "float8": float,
    "numeric": _decimal,
    "bool": _bool,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timestamp": datetime.datetime.fromisoformat,
    "timestamptz": datetime.datetime.fromisoformat,
    "uuid": uuid.UUID,
}


def _count(status: str | None) -> int:
    if not status:
        return -1
    match = _STATUS_COUNT.search(status)
    return int(match.group(1)) if match else -1
