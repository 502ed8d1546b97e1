"""``SqlSensor``: poke a query until its first row says done (Airflow's, async)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from airloop.authoring.context import Context
from airloop.authoring.sensor import BaseSensor
from airloop.exceptions import AirloopError, DagDefinitionError
from airloop.hooks.sql import DbApiHook, json_safe, statement_head


class SqlSensorFailure(AirloopError):
    """The sensor's ``failure`` criterion held, or it got no row with ``fail_on_empty``."""


class SqlSensor(BaseSensor):
    """Runs ``sql`` on ``conn_id`` at each poke and looks at the first row.

    No row: not done (fails with ``fail_on_empty=True``). Otherwise ``selector`` picks
    a value from the row (its first column by default); ``failure(value)`` true fails
    the task; ``success(value)`` decides, else the value's truth does (0, NULL, an
    empty string and false are not done). The query runs once per poke on the
    engine's shared pool: a waiting sensor holds no connection between pokes.
    """

    template_fields: ClassVar[Sequence[str]] = ("conn_id", "sql", "parameters", "hook_params")
    template_ext: ClassVar[Sequence[str]] = (".hql", ".sql")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"sql": "sql"}

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        success: Callable[[Any], Any] | None = None,
        failure: Callable[[Any], Any] | None = None,
        selector: Callable[[tuple[Any, ...]], Any] = itemgetter(0),
        fail_on_empty: bool = False,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"sensor {self.task_id!r}"
        if not conn_id or not isinstance(conn_id, str):
            raise DagDefinitionError(f"{where}: conn_id is required (a connection id)")
        if not isinstance(sql, str) or not sql.strip():
            raise DagDefinitionError(f"{where}: sql must be a non-empty string")
        for name, value in (("success", success), ("failure", failure), ("selector", selector)):
            if value is not None and not callable(value):
                raise DagDefinitionError(f"{where}: {name} must be callable, got {value!r}")
        unknown = sorted(set(hook_params or ()) - {"log_sql", "pool_size"})
        if unknown:
            raise DagDefinitionError(
                f"{where}: unknown hook_params {', '.join(unknown)}; "
                "the SQL hooks take log_sql, pool_size"
            )
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.success = success
        self.failure = failure
        self.selector = selector
        self.fail_on_empty = fail_on_empty
        self.hook_params = dict(hook_params or {})
        self._hook: DbApiHook | None = None

    async def _get_hook(self) -> DbApiHook:
        """Looked up once per try (the connection too), then reused at every poke."""
        if self._hook is None:
            self._hook = await DbApiHook.for_connection(self.conn_id, **self.hook_params)
        return self._hook

    async def poke(self, context: Context) -> bool:  # type: ignore[override]  # async poke: BaseSensor awaits it
        hook = await self._get_hook()
        records = await hook.get_records(self.sql, self.parameters)
        if not records:
            if self.fail_on_empty:
                raise SqlSensorFailure(
                    f"sensor {self.task_id!r}: {statement_head(self.sql)!r} returned no row "
                    "(fail_on_empty=True)"
                )
            return False
        value = self.selector(records[0])
        if self.failure is not None and self.failure(value):
            raise SqlSensorFailure(
                f"sensor {self.task_id!r}: failure criterion met: "
                f"failure({json_safe(value)!r}) returned true"
            )
        if self.success is not None:
            return bool(self.success(value))
        return bool(value)
