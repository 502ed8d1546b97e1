"""``MySqlHook`` on asyncmy (MySQL and MariaDB).

Parameters: the driver's own, as Airflow's MySQL hooks take them: ``%s`` with a list
or tuple, ``%(name)s`` with a dict (``%%`` stands for ``%`` when parameters are
given). Without parameters the statement is sent as written.

Connection: host, port (3306), login, password, schema (the database); extra
``charset``, ``connect_timeout`` (seconds), ``init_command`` and ``pool_size``.
Other extra keys are not read. Connection type ``mysql`` (``mariadb`` is an alias).
"""

from __future__ import annotations

from typing import Any, ClassVar

from airloop.connections import Connection, InvalidConnection
from airloop.hooks.sql import (
    DbApiHook,
    QueryResult,
    import_driver,
    loaded_driver,
    one_line,
    parameters_kind,
)


class MySqlHook(DbApiHook):
    """Airflow's ``MySqlHook``: ``MySqlHook(mysql_conn_id="...")``."""

    conn_name_attr = "mysql_conn_id"
    default_conn_name = "mysql_default"
    conn_type = "mysql"
    hook_name = "MySQL"
    conn_types: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    placeholder: ClassVar[str] = "%s"
    text_rules: ClassVar[dict[str, bool]] = {
        "dollar_quotes": False,
        "backslash_escapes": True,
        "hash_comments": True,
    }

    async def _connect(self, conn: Connection) -> Any:
        extra = conn.extra_dejson
        options: dict[str, Any] = {}
        if "charset" in extra:
            options["charset"] = str(extra["charset"])
        if "init_command" in extra:
            options["init_command"] = str(extra["init_command"])
        if "connect_timeout" in extra:
            try:
                options["connect_timeout"] = float(extra["connect_timeout"])
            except (TypeError, ValueError):
                raise InvalidConnection(
                    f"connection {self.conn_id!r}: extra connect_timeout must be seconds, "
                    f"got {extra['connect_timeout']!r}"
                ) from None
        asyncmy = import_driver("asyncmy", "MySqlHook", "mysql")
        return await asyncmy.connect(
            host=conn.host or "localhost",
            port=conn.port or 3306,
            user=conn.login,
            password=conn.password or "",
            database=self.schema or conn.schema,
            autocommit=False,
            **options,
        )

    async def _close(self, raw: Any) -> None:
        await raw.ensure_closed()

    def _abort(self, raw: Any) -> None:
        raw.close()

    def _usable(self, raw: Any) -> bool:
        return bool(raw.connected) and not getattr(raw, "_stream_broken", False)

    async def _set_autocommit(self, raw: Any, autocommit: bool) -> None:
        if raw.get_autocommit() != autocommit:
            await raw.autocommit(autocommit)

    async def _begin(self, raw: Any) -> None:
        await raw.begin()

    async def _commit(self, raw: Any) -> None:
        await raw.commit()

    async def _rollback(self, raw: Any) -> None:
        await raw.rollback()

    async def _execute(self, raw: Any, statement: str, parameters: Any, fetch: bool) -> QueryResult:
        kind = parameters_kind(parameters)
        async with raw.cursor() as cursor:
            if kind == "none":
                await cursor.execute(statement)
            else:
                await cursor.execute(statement, parameters)
            if cursor.description is None:
                return QueryResult(statement, None, [], cursor.rowcount)
            columns = [d[0] for d in cursor.description]
            rows = [tuple(r) for r in await cursor.fetchall()]
            return QueryResult(statement, columns, rows, cursor.rowcount)

    async def _executemany(self, raw: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
        async with raw.cursor() as cursor:
            await cursor.executemany(statement, rows)

    def _driver_message(self, exc: BaseException) -> str | None:
        errors = loaded_driver("asyncmy.errors")
        if errors is None:
            return None
        if isinstance(exc, errors.MySQLError):
            args = exc.args
            if len(args) >= 2 and isinstance(args[0], int):
                return f"({args[0]}) {one_line(str(args[1]))}"
            return one_line(str(exc)) or type(exc).__name__
        return None
