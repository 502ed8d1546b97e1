"""The pages read through the JSON API's own handlers, in process.

A page calls ``await api_call(dags.get_dag, dag_id=..., user=..., reads=...)`` and gets
the JSON the route would send (``jsonable_encoder`` of its models): one place decides
shapes, masking and 404s, so a page never shows more (or other) than the API. The
handler is called as a function -- no second trip through the middleware, routing,
HTTP encoding and JSON parsing (each such trip cost a request's full path, ~3.4 ms of
loop CPU and a session lookup, per page section: ADR 0037). The page request has
passed authentication already (``page_context`` depends on ``current_user``) and its
user is handed to the handler. Called as a function, a handler's own dependencies
(``ViewerDep``, ``AdminDep``) do not run: call only reads any signed-in user may make,
never a change. The page validates its own query parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder

from airloop.api.deps import User, current_user
from airloop.api.params import Pagination
from airloop.store.reads import Reads
from airloop.store.runs import Store
from airloop.store.service import ServiceStore


class ApiCallError(Exception):
    """The API answered an error: its status and one-line detail."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class PageContext:
    """What the API handlers depend on, for the page request: its user, the app's
    store and settings, the readers."""

    def __init__(self, request: Request, user: User) -> None:
        self.request = request
        self.user = user
        self.store: Store = request.app.state.store
        self.settings = request.app.state.settings
        self.reads = Reads(self.store)
        self.service = ServiceStore(self.store)

    @staticmethod
    def page(limit: int, offset: int = 0) -> Pagination:
        return Pagination(limit, offset)


async def page_context(request: Request) -> PageContext:
    """The page's context (401 without a user, as every page needs one)."""
    return PageContext(request, await current_user(request))


async def api_call(handler: Callable[..., Awaitable[Any]], /, **kwargs: Any) -> Any:
    """The handler's answer as the JSON its route sends; ApiCallError for its errors."""
    try:
        answer = await handler(**kwargs)
    except HTTPException as exc:
        raise ApiCallError(exc.status_code, str(exc.detail)) from None
    return jsonable_encoder(answer)


async def api_call_optional(handler: Callable[..., Awaitable[Any]], /, **kwargs: Any) -> Any:
    """As api_call, but None when the API answers 404 (a thing that may not exist yet)."""
    try:
        return await api_call(handler, **kwargs)
    except ApiCallError as exc:
        if exc.status_code == 404:
            return None
        raise


async def gather_owned(*calls: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run API calls at once, answers in order. The first failure cancels the others
    (a TaskGroup owns them) and is raised as itself (an ApiCallError)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except* ApiCallError as errors:
        raise errors.exceptions[0] from None
    return [task.result() for task in tasks]


def items(answer: Any) -> list[Any]:
    """The rows of a list answer: ``{"items": [...]}`` or a bare list."""
    if isinstance(answer, dict):
        rows: list[Any] = answer["items"]
        return rows
    return list(answer)
