"""``HttpOperator``: one HTTP call (or a paginated series) as a task, Airflow's arguments.

The call is a coroutine on the shared session of its connection (see hooks/http.py);
``response_check``, ``response_filter`` and ``pagination_function`` are user code and
run off the loop (``run_sync``) unless they are ``async def``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from airloop.authoring.airflow_args import Unsupported
from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.exceptions import AirloopError, DagDefinitionError, FailTask
from airloop.hooks.http import (
    HTTP_ARGS,
    HttpHook,
    HttpResponse,
    call_with_context,
    check_request_arguments,
)


def _merge(base: Mapping[str, Any] | None, more: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(base or {}), **(more or {})}


class HttpOperator(BaseOperator):
    """Call an HTTP endpoint (Airflow's ``HttpOperator``).

    Returns the response text (a list of texts when paginated) or what
    ``response_filter(response, **context)`` returns; fails when
    ``response_check(response, **context)`` is falsy. ``pagination_function(response)``
    returns the next request's changes (``endpoint``, ``data``, ``headers``,
    ``extra_options``, merged over the operator's own) or None to stop; with it,
    ``response_check`` and ``response_filter`` get the list of every response.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("endpoint", "data", "headers")
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"headers": "json", "data": "py"}
    template_ext: ClassVar[tuple[str, ...]] = ()
    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = HTTP_ARGS

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "POST",
        data: Any = None,
        headers: dict[str, str] | None = None,
        pagination_function: Callable[..., Any] | None = None,
        response_check: Callable[..., Any] | None = None,
        response_filter: Callable[..., Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        http_conn_id: str = "http_default",
        log_response: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        for name, fn in (
            ("pagination_function", pagination_function),
            ("response_check", response_check),
            ("response_filter", response_filter),
        ):
            if fn is not None and not callable(fn):
                raise DagDefinitionError(f"{where}: {name} must be callable, got {fn!r}")
        check_request_arguments(where, method, http_conn_id, request_kwargs, extra_options)
        self.endpoint = endpoint
        self.method = method
        self.data = data
        self.headers = headers or {}
        self.pagination_function = pagination_function
        self.response_check = response_check
        self.response_filter = response_filter
        self.extra_options = extra_options or {}
        self.request_kwargs = request_kwargs or {}
        self.http_conn_id = http_conn_id
        self.log_response = log_response

    @property
    def hook(self) -> HttpHook:
        return HttpHook(self.method, http_conn_id=self.http_conn_id)

    async def execute(self, context: Context) -> Any:
        hook = self.hook
        context.log.info("calling HTTP %s %s (%s)", hook.method, self.endpoint, self.http_conn_id)
        response = await hook.arun(
            self.endpoint, self.data, self.headers, self.extra_options, **self.request_kwargs
        )
        result: HttpResponse | list[HttpResponse] = response
        if self.pagination_function is not None:
            result = await self.paginate(hook, response, context)
        return await self.process_response(context, result)

    async def paginate(
        self, hook: HttpHook, response: HttpResponse, context: Context
    ) -> list[HttpResponse]:
        assert self.pagination_function is not None
        responses = [response]
        while True:
            changes = await call_with_context(self.pagination_function, [response], {})
            if not changes:
                break
            if not isinstance(changes, Mapping):
                raise FailTask(
                    f"task {self.task_id!r}: pagination_function must return a dict of the "
                    f"next request's arguments or None, got {type(changes).__name__}"
                )
            unknown = sorted(
                set(changes) - {"endpoint", "data", "headers", "extra_options", "json", "params"}
            )
            if unknown:
                raise FailTask(
                    f"task {self.task_id!r}: pagination_function returned unknown key "
                    f"{unknown[0]!r} (expected endpoint, data, headers, extra_options, json, params)"
                )
            response = await hook.arun(**self._next_request(changes))
            responses.append(response)
            context.log.info("fetched page %d", len(responses))
        # Airflow's: a list with a pagination_function, even of one response.
        return responses

    def _next_request(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Airflow's merge: the page's changes over the operator's own arguments."""
        data = changes.get("data", self.data)
        if isinstance(self.data, Mapping) and isinstance(changes.get("data"), Mapping):
            data = _merge(self.data, changes["data"])
        request: dict[str, Any] = {
            "endpoint": changes.get("endpoint") or self.endpoint,
            "data": data,
            "headers": _merge(self.headers, changes.get("headers")),
            "extra_options": _merge(self.extra_options, changes.get("extra_options")),
            **self.request_kwargs,
        }
        for name in ("json", "params"):
            if name in changes:
                request[name] = changes[name]
        return request

    async def process_response(
        self, context: Context, response: HttpResponse | list[HttpResponse]
    ) -> Any:
        default = [r.text for r in response] if isinstance(response, list) else response.text
        if self.log_response:
            context.log.info("%s", default)
        check = self.response_check
        if check is not None and not await call_with_context(check, [response], context):
            raise AirloopError(f"task {self.task_id!r}: response check returned False")
        if self.response_filter is not None:
            return await call_with_context(self.response_filter, [response], context)
        return default


#: Airflow 2's name (Airflow 3 has HttpOperator only): the same class.
SimpleHttpOperator = HttpOperator
