"""The pages read through the JSON API, in process.

A page handler asks ``await api_get(request, "/dags", search="x")`` and gets the same
JSON a browser or script would: one place decides filtering, validation, pagination,
masking and who may see what, so a page can never show more (or other) than the API.
The call goes through the app itself (httpx's ASGI transport, no socket) with the
page request's credentials (session cookie or bearer token) and client address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import httpx
from fastapi import Request

API_PREFIX = "/api/v1"
_FORWARDED = ("cookie", "authorization")

Scalar = str | int | float | bool | None
ParamValue = Scalar | Sequence[str]


class ApiCallError(Exception):
    """The API answered an error: its status and one-line detail."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def _params(params: Mapping[str, ParamValue]) -> list[tuple[str, Scalar]]:
    pairs: list[tuple[str, Scalar]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(v)) for v in value)
    return pairs


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, str):
        return detail
    return f"{response.status_code} {response.reason_phrase}"


async def api_get(request: Request, path: str, **params: ParamValue) -> Any:
    """GET ``/api/v1{path}`` as the page's user; the decoded JSON, or ApiCallError."""
    client = request.client
    transport = httpx.ASGITransport(
        app=request.app, client=(client.host, client.port) if client else ("127.0.0.1", 0)
    )
    headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
    headers["accept"] = "application/json"
    base = f"{request.url.scheme}://{request.url.netloc}"
    async with httpx.AsyncClient(transport=transport, base_url=base, headers=headers) as http:
        response = await http.get(API_PREFIX + path, params=_params(params))
    if response.status_code >= 400:
        raise ApiCallError(response.status_code, _detail(response))
    return response.json()


async def api_get_optional(request: Request, path: str, **params: ParamValue) -> Any:
    """As api_get, but None when the API answers 404 (a thing that may not exist yet)."""
    try:
        return await api_get(request, path, **params)
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
