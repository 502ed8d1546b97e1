"""Query parameters shared by the API's routes: pagination, and the rule that a query
parameter a route does not know is an error (400 naming it), never silently ignored.

Routers install the rule once: ``APIRouter(dependencies=[Depends(known_params_only)])``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.dependencies.models import Dependant

T = TypeVar("T")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return names


def _known_for(route: Any) -> set[str]:
    """The query parameters the route declares, its own and its dependencies' (a
    walk of a few nodes: cheaper than caching it per route)."""
    dependant = getattr(route, "dependant", None)
    return _names(dependant) if dependant is not None else set()


def unknown_params(request: Request, known: Iterable[str], what: str = "endpoint") -> str | None:
    """The one-line complaint about the request's query parameters that are not in
    ``known`` (None: there are none). Every route, page and stream says it this way."""
    allowed = set(known)
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if not unknown:
        return None
    takes = ", ".join(sorted(allowed)) or "none"
    return f"unknown query parameter(s): {', '.join(unknown)} (this {what} takes: {takes})"


def refuse_unknown_params(
    request: Request, known: Iterable[str] = (), what: str = "endpoint"
) -> None:
    """400 naming the query parameters not in ``known``."""
    message = unknown_params(request, known, what)
    if message is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, message)


async def known_params_only(request: Request) -> None:
    """400 when the query string has a parameter the matched route does not declare."""
    route = request.scope.get("route")
    if route is not None:
        refuse_unknown_params(request, _known_for(route))


@dataclass(frozen=True, slots=True)
class Pagination:
    limit: int
    offset: int


async def pagination(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (at most 1000).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]


def page_of(items: list[T], page: Pagination) -> dict[str, Any]:
    """One offset page of a list held whole (pools, connections, variables)."""
    return {
        "items": items[page.offset : page.offset + page.limit],
        "total": len(items),
        "next_cursor": None,
    }


KnownParams = Depends(known_params_only)
