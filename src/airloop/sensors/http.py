"""``HttpSensor``: poke an HTTP endpoint until it answers (and ``response_check`` agrees)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from airloop.authoring.airflow_args import SENSOR_ARGS, Unsupported
from airloop.authoring.context import Context
from airloop.authoring.sensor import BaseSensor, PokeReturnValue
from airloop.exceptions import DagDefinitionError
from airloop.hooks.http import (
    HTTP_ARGS,
    HttpError,
    HttpHook,
    call_with_context,
    check_request_arguments,
)


class HttpSensor(BaseSensor):
    """Airflow's ``HttpSensor``: each poke sends one request.

    An answer whose status is in ``response_error_codes_allowlist`` (default
    ``["404"]``, as in Airflow) means "not yet"; any other error status fails the
    task. A successful answer finishes the sensor, unless ``response_check(response,
    **context)`` returns False (poke again) or a ``PokeReturnValue``.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("endpoint", "request_params", "headers")
    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = {**SENSOR_ARGS, **HTTP_ARGS}

    def __init__(
        self,
        *,
        endpoint: str,
        http_conn_id: str = "http_default",
        method: str = "GET",
        request_params: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        response_error_codes_allowlist: Iterable[str | int] | None = None,
        response_check: Callable[..., Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"sensor {self.task_id!r}"
        if response_check is not None and not callable(response_check):
            raise DagDefinitionError(f"{where}: response_check must be callable")
        check_request_arguments(where, method, http_conn_id, request_kwargs, extra_options)
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = method
        self.request_params = request_params or {}
        self.request_kwargs = request_kwargs or {}
        self.headers = headers or {}
        allow = (
            ["404"] if response_error_codes_allowlist is None else response_error_codes_allowlist
        )
        self.response_error_codes_allowlist = [str(code) for code in allow]
        self.response_check = response_check
        self.extra_options = extra_options or {}

    async def poke(self, context: Context) -> bool | PokeReturnValue:  # type: ignore[override]
        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        context.log.info("poking %s", self.endpoint)
        try:
            response = await hook.arun(
                self.endpoint,
                data=self.request_params,
                headers=self.headers,
                extra_options=self.extra_options,
                **self.request_kwargs,
            )
        except HttpError as exc:
            if exc.status is not None and str(exc.status) in self.response_error_codes_allowlist:
                context.log.info("HTTP %s: not yet", exc.status)
                return False
            raise
        if self.response_check is not None:
            result = await call_with_context(self.response_check, [response], context)
            if isinstance(result, PokeReturnValue):
                return result
            return bool(result)
        return True
