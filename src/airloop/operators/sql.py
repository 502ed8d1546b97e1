"""The SQL operators (Airflow's common.sql provider): run statements, check results.

``SQLExecuteQueryOperator`` runs one statement or several on a connection and pushes
what its handler returns (by default every row of the last statement) as XCom, in
JSON-safe form and at most ``max_xcom_rows`` rows (the ``sql.xcom_max_rows``
setting by default): past it the task fails without retry, naming the count, rather
than storing a truncated result. ``SQLCheckOperator`` fails when a value of the first
row is falsy; ``SQLValueCheckOperator`` compares the first row with ``pass_value``.
The hook is picked by the connection's type (postgres, mysql/mariadb, sqlite).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.exceptions import AirloopError, DagDefinitionError, FailTask
from airloop.hooks.sql import (
    DbApiHook,
    Handler,
    SqlError,
    fetch_all_handler,
    fetch_one_handler,
    json_safe,
    statement_head,
)
from airloop.runtime import current_resources
from airloop.settings import SqlSettings

log = logging.getLogger("airloop.task.sql")


class SqlCheckFailed(AirloopError):
    """An SQL check operator's condition does not hold."""


def _check_conn_id(where: str, conn_id: Any) -> str:
    if not conn_id or not isinstance(conn_id, str):
        raise DagDefinitionError(f"{where}: conn_id is required (a connection id)")
    return conn_id


def _check_sql(where: str, sql: Any) -> str | list[str]:
    if isinstance(sql, str):
        if not sql.strip():
            raise DagDefinitionError(f"{where}: sql is empty")
        return sql
    if isinstance(sql, Iterable) and not isinstance(sql, (bytes, Mapping)):
        items = list(sql)
        if not items or not all(isinstance(s, str) for s in items):
            raise DagDefinitionError(
                f"{where}: sql must be a string or a non-empty list of strings"
            )
        return items
    raise DagDefinitionError(
        f"{where}: sql must be a string or a list of strings, got {type(sql).__name__}"
    )


class BaseSQLOperator(BaseOperator):
    """What every SQL operator takes: ``conn_id``, ``database`` (overrides the
    connection's), ``hook_params`` (passed to the hook: ``log_sql``, ``pool_size``) and
    ``retry_on_failure`` (False: an SQL error or a failed check fails the task without
    retry)."""

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        database: str | None = None,
        hook_params: Mapping[str, Any] | None = None,
        retry_on_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        self.conn_id = _check_conn_id(where, conn_id)
        self.database = database
        if hook_params is not None and not isinstance(hook_params, Mapping):
            raise DagDefinitionError(f"{where}: hook_params must be a dict")
        allowed = {"log_sql", "pool_size"}
        unknown = sorted(set(hook_params or ()) - allowed)
        if unknown:
            raise DagDefinitionError(
                f"{where}: unknown hook_params {', '.join(unknown)}; "
                f"the SQL hooks take {', '.join(sorted(allowed))}"
            )
        self.hook_params = dict(hook_params or {})
        self.retry_on_failure = retry_on_failure

    async def get_db_hook(self) -> DbApiHook:
        """The hook for ``conn_id``, by the connection's type."""
        return await DbApiHook.for_connection(
            self.conn_id, schema=self.database, **self.hook_params
        )

    async def _run(self, hook: DbApiHook, **kwargs: Any) -> Any:
        try:
            return await hook.run(**kwargs)
        except SqlError as exc:
            if self.retry_on_failure:
                raise
            raise FailTask(f"{exc} (retry_on_failure=False)") from exc

    def _check_failed(self, exc: SqlCheckFailed) -> AirloopError:
        """A failed check: retried as any failure, or not with ``retry_on_failure=False``
        (Airflow's check operators)."""
        if self.retry_on_failure:
            return exc
        failed = FailTask(f"{exc} (retry_on_failure=False)")
        failed.__cause__ = exc
        return failed


def _sql_settings() -> SqlSettings:
    resources = current_resources.get()
    settings = getattr(getattr(resources, "settings", None), "sql", None)
    return settings if isinstance(settings, SqlSettings) else SqlSettings()


def count_rows(value: Any, nested: bool) -> int:
    """Rows in a handler's result (a list of rows), or in a list of those (``nested``)."""
    if nested:
        return sum(count_rows(v, False) for v in value or ())
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


class SQLExecuteQueryOperator(BaseSQLOperator):
    """Airflow's ``SQLExecuteQueryOperator``: run ``sql`` (a string, a list, or a
    ``.sql`` template file) on ``conn_id``; the handler's result is the XCom."""

    template_fields: ClassVar[Sequence[str]] = (
        "conn_id",
        "sql",
        "parameters",
        "database",
        "hook_params",
    )
    template_ext: ClassVar[Sequence[str]] = (".sql", ".json")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"sql": "sql", "parameters": "json"}

    def __init__(
        self,
        *,
        sql: str | list[str],
        autocommit: bool = False,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        handler: Handler | None = fetch_all_handler,
        split_statements: bool | None = None,
        return_last: bool = True,
        show_return_value_in_logs: bool = False,
        max_xcom_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        self.sql = _check_sql(where, sql)
        if handler is not None and not callable(handler):
            raise DagDefinitionError(f"{where}: handler must be callable, got {handler!r}")
        if max_xcom_rows is not None and (not isinstance(max_xcom_rows, int) or max_xcom_rows < 0):
            raise DagDefinitionError(f"{where}: max_xcom_rows must be an integer >= 0")
        self.autocommit = autocommit
        self.parameters = parameters
        self.handler = handler
        self.split_statements = split_statements
        self.return_last = return_last
        self.show_return_value_in_logs = show_return_value_in_logs
        self.max_xcom_rows = max_xcom_rows

    async def execute(self, context: Context) -> Any:
        hook = await self.get_db_hook()
        handler = self.handler if self.do_xcom_push else None
        output = await self._run(
            hook,
            sql=self.sql,
            autocommit=self.autocommit,
            parameters=self.parameters,
            handler=handler,
            split_statements=self.split_statements,
            return_last=self.return_last,
        )
        if handler is None:
            return None
        single = isinstance(self.sql, str) and (self.return_last or self.split_statements is False)
        limit = self.max_xcom_rows
        if limit is None:
            limit = _sql_settings().xcom_max_rows
        rows = count_rows(output, nested=not single)
        if rows > limit:
            raise FailTask(
                f"task {self.task_id!r}: the query returned {rows} rows, more than "
                f"max_xcom_rows={limit} (the sql.xcom_max_rows setting by default): select "
                "fewer rows, raise the limit, or set do_xcom_push=False"
            )
        value = json_safe(output)
        if self.show_return_value_in_logs:
            log.info("returned: %s", value)
        else:
            log.info("returned %d row(s)", rows)
        return value


def _first_row(sql: str, record: Any) -> Sequence[Any]:
    if not record:
        raise SqlCheckFailed(f"the check query returned no row: {statement_head(sql)!r}")
    return tuple(record)


class SQLCheckOperator(BaseSQLOperator):
    """Airflow's ``SQLCheckOperator``: fails when the first row of ``sql`` has a falsy
    value (0, NULL, an empty string, false) or there is no row."""

    template_fields: ClassVar[Sequence[str]] = ("conn_id", "sql", "parameters", "database")
    template_ext: ClassVar[Sequence[str]] = (".hql", ".sql")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"sql": "sql"}

    def __init__(
        self,
        *,
        sql: str,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        checked = _check_sql(f"task {self.task_id!r}", sql)
        if not isinstance(checked, str):
            raise DagDefinitionError(f"task {self.task_id!r}: sql must be one statement (a string)")
        self.sql = checked
        self.parameters = parameters

    async def execute(self, context: Context) -> None:
        hook = await self.get_db_hook()
        record = await self._run(
            hook, sql=self.sql, parameters=self.parameters, handler=fetch_one_handler
        )
        try:
            values = _first_row(self.sql, record)
        except SqlCheckFailed as exc:
            raise self._check_failed(exc) from None
        falsy = [i for i, v in enumerate(values) if not v]
        if falsy:
            raise self._check_failed(
                SqlCheckFailed(
                    f"check failed: {statement_head(self.sql)!r} returned "
                    f"{json_safe(list(values))!r} (falsy value in column(s) "
                    f"{', '.join(str(i + 1) for i in falsy)})"
                )
            )
        log.info("check passed: %s", json_safe(list(values)))


class SQLValueCheckOperator(BaseSQLOperator):
    """Airflow's ``SQLValueCheckOperator``: every value of the first row must equal
    ``pass_value`` -- numerically when it is a number (within ``tolerance``, a
    fraction: 0.1 accepts 10 % either side), as text otherwise."""

    template_fields: ClassVar[Sequence[str]] = (
        "conn_id",
        "sql",
        "pass_value",
        "parameters",
        "database",
    )
    template_ext: ClassVar[Sequence[str]] = (".hql", ".sql")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"sql": "sql"}

    def __init__(
        self,
        *,
        sql: str,
        pass_value: Any,
        tolerance: Any = None,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        checked = _check_sql(where, sql)
        if not isinstance(checked, str):
            raise DagDefinitionError(f"{where}: sql must be one statement (a string)")
        self.sql = checked
        self.pass_value = pass_value
        if tolerance is not None:
            try:
                tolerance = float(tolerance)
            except (TypeError, ValueError):
                raise DagDefinitionError(
                    f"{where}: tolerance must be a number, got {tolerance!r}"
                ) from None
            if tolerance < 0:
                raise DagDefinitionError(f"{where}: tolerance must be >= 0, got {tolerance}")
        self.tolerance: float | None = tolerance
        self.parameters = parameters

    async def execute(self, context: Context) -> None:
        hook = await self.get_db_hook()
        record = await self._run(
            hook, sql=self.sql, parameters=self.parameters, handler=fetch_one_handler
        )
        try:
            values = _first_row(self.sql, record)
        except SqlCheckFailed as exc:
            raise self._check_failed(exc) from None
        try:
            expected: float | None = float(self.pass_value)
        except (TypeError, ValueError):
            expected = None
        if expected is not None:
            try:
                numbers = [float(v) for v in values]
            except (TypeError, ValueError):
                raise self._check_failed(
                    SqlCheckFailed(
                        f"value check: {statement_head(self.sql)!r} returned "
                        f"{json_safe(list(values))!r}, not numbers to compare with "
                        f"{self.pass_value!r}"
                    )
                ) from None
            if self.tolerance is not None:
                low = expected * (1 - self.tolerance)
                high = expected * (1 + self.tolerance)
                low, high = min(low, high), max(low, high)
                ok = all(low <= n <= high for n in numbers)
            else:
                ok = all(n == expected for n in numbers)
        else:
            ok = all(str(v) == str(self.pass_value) for v in values)
        if not ok:
            within = f" (tolerance {self.tolerance:g})" if self.tolerance is not None else ""
            raise self._check_failed(
                SqlCheckFailed(
                    f"value check failed: {statement_head(self.sql)!r} returned "
                    f"{json_safe(list(values))!r}, expected {self.pass_value!r}{within}"
                )
            )
        log.info("value check passed: %s", json_safe(list(values)))
