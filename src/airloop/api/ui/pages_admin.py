"""UI admin pages: pools, connections and variables — a table each and one form to
create or edit a row, both driven by the JSON API (``static/admin.js``).

Secrets never reach the page: connections come with ``has_password`` only (the
password input is write-only: blank keeps the stored one) and the API masks extras and
sensitive variables; the script sends a masked field back only when the user changed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from airloop.api.deps import current_user
from airloop.api.params import unknown_params
from airloop.api.routes import connections as connection_routes
from airloop.api.routes import pools as pool_routes
from airloop.api.routes import variables as variable_routes
from airloop.api.ui.api_client import ApiCallError, PageContext, api_call, page_context
from airloop.api.ui.templating import render

#: Behind the authentication middleware; the dependency says so again (any user).
router = APIRouter(dependencies=[Depends(current_user)])

FieldKind = Literal["text", "integer", "textarea", "password"]


@dataclass(frozen=True, slots=True)
class AdminField:
    name: str
    label: str
    kind: FieldKind = "text"
    required: bool = False
    help: str | None = None


@dataclass(frozen=True, slots=True)
class AdminResource:
    slug: str  # the page: /admin/{slug}; the API: /api/v1/{slug}
    title: str
    key: str  # the field naming a row (read-only when editing)
    columns: tuple[tuple[str, str], ...]  # (field, heading) shown in the table
    fields: tuple[AdminField, ...]  # the form


RESOURCES = {
    "pools": AdminResource(
        slug="pools",
        title="Pools",
        key="name",
        columns=(
            ("name", "Pool"),
            ("slots", "Slots"),
            ("running", "Running"),
            ("queued", "Queued"),
            ("open", "Open"),
            ("description", "Description"),
        ),
        fields=(
            AdminField("name", "Name", required=True),
            AdminField(
                "slots",
                "Slots",
                "integer",
                required=True,
                help="Task instances that may run at once",
            ),
            AdminField("description", "Description", "textarea"),
        ),
    ),
    "connections": AdminResource(
        slug="connections",
        title="Connections",
        key="conn_id",
        columns=(
            ("conn_id", "Conn id"),
            ("conn_type", "Type"),
            ("host", "Host"),
            ("port", "Port"),
            ("schema", "Schema"),
            ("login", "Login"),
            ("has_password", "Password"),
            ("extra", "Extra"),
            ("description", "Description"),
        ),
        fields=(
            AdminField("conn_id", "Conn id", required=True),
            AdminField("conn_type", "Type", required=True, help="e.g. http, postgres, aws"),
            AdminField("description", "Description"),
            AdminField("host", "Host"),
            AdminField("port", "Port", "integer"),
            AdminField("schema", "Schema"),
            AdminField("login", "Login"),
            AdminField(
                "password",
                "Password",
                "password",
                help="Never shown. Leave blank to keep the stored password.",
            ),
            AdminField("extra", "Extra (JSON)", "textarea", help="Secret values show as ***"),
        ),
    ),
    "variables": AdminResource(
        slug="variables",
        title="Variables",
        key="key",
        columns=(("key", "Key"), ("value", "Value"), ("description", "Description")),
        fields=(
            AdminField("key", "Key", required=True),
            AdminField("value", "Value", "textarea", help="Values of sensitive keys show as ***"),
            AdminField("description", "Description"),
        ),
    ),
}


#: The API handler each admin page lists through.
LISTS: dict[str, Callable[..., Awaitable[Any]]] = {
    "pools": pool_routes.get_pools,
    "connections": connection_routes.get_connections,
    "variables": variable_routes.get_variables,
}


def _list_args(slug: str, request: Request, ctx: PageContext) -> dict[str, Any]:
    args = {"store": ctx.store, "settings": ctx.settings, "user": ctx.user, "page": ctx.page(1000)}
    if slug != "connections":
        args["request"] = request
    return args


def _is_admin(request: Request) -> bool:
    user = getattr(request.state, "user", None)
    return bool(user is not None and user.is_admin)


async def _page(request: Request, slug: str) -> HTMLResponse:
    resource = RESOURCES[slug]
    message = unknown_params(request, (), "page")
    if message is not None:
        return render(request, "error.html", status_code=400, message=message)
    try:
        listing = await api_call(
            LISTS[slug], **_list_args(slug, request, await page_context(request))
        )
    except ApiCallError as exc:
        return render(request, "error.html", status_code=exc.status_code, message=exc.detail)
    items = listing["items"] if isinstance(listing, dict) else listing
    return render(
        request,
        "admin.html",
        resource=resource,
        items=items,
        total=listing.get("total", len(items)) if isinstance(listing, dict) else len(items),
        is_admin=_is_admin(request),
    )


@router.get("/admin/pools", response_class=HTMLResponse)
async def pools(request: Request) -> HTMLResponse:
    return await _page(request, "pools")


@router.get("/admin/connections", response_class=HTMLResponse)
async def connections(request: Request) -> HTMLResponse:
    return await _page(request, "connections")


@router.get("/admin/variables", response_class=HTMLResponse)
async def variables(request: Request) -> HTMLResponse:
    return await _page(request, "variables")
