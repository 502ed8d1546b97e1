"""/api/v1/variables: variables in the metadata database, through
``airloop.connections`` (encrypted at rest with ``fernet_key``). A variable whose key
looks sensitive (password, secret, token, api_key..., plus the setting
``sensitive_var_conn_names``) shows its value as ``***``. Reads: any user; changes:
admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from airloop.api.deps import AdminDep, SettingsDep, StoreDep, ViewerDep
from airloop.api.params import KnownParams, PaginationDep, page_of
from airloop.api.routes.connections import metastore
from airloop.core.masking import MASK, should_hide_value_for_key
from airloop.exceptions import AirloopError
from airloop.store.connections import RecordExistsError

router = APIRouter(tags=["variables"], dependencies=[KnownParams])


class VariableBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, Field(min_length=1, max_length=250)]
    value: str
    description: str | None = None


class VariablePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str | None = None
    description: str | None = None


def _out(key: str, value: str | None, description: str | None) -> dict[str, Any]:
    shown = MASK if value and should_hide_value_for_key(key) else value
    return {"key": key, "value": shown, "description": description}


def _conflict(exc: AirloopError) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


@router.get("/variables")
async def get_variables(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: ViewerDep,
    page: PaginationDep,
) -> dict[str, Any]:
    try:
        rows = await metastore(store, settings).variables()
    except AirloopError as exc:  # a key that cannot decrypt them
        raise _conflict(exc) from None
    return page_of([_out(*row) for row in rows], page)


async def _find(request: Request, key: str) -> tuple[str, str | None, str | None]:
    store, settings = request.app.state.store, request.app.state.settings
    try:
        found = await metastore(store, settings).variable(key)
    except AirloopError as exc:  # a key that cannot decrypt it
        raise _conflict(exc) from None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no variable {key!r}")
    return found


@router.get("/variables/{key}")
async def get_variable(key: str, request: Request, user: ViewerDep) -> dict[str, Any]:
    return _out(*await _find(request, key))


@router.post("/variables", status_code=status.HTTP_201_CREATED)
async def post_variable(
    body: VariableBody, request: Request, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> dict[str, Any]:
    try:
        await metastore(store, settings).set_variables(
            [(body.key, body.value, body.description)], overwrite=False
        )
    except RecordExistsError as exc:
        raise _conflict(exc) from None
    except AirloopError as exc:  # no fernet key
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _out(body.key, body.value, body.description)


@router.patch("/variables/{key}")
async def patch_variable(
    key: str,
    body: VariablePatch,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: AdminDep,
) -> dict[str, Any]:
    """Change the value and/or the description (the fields given)."""
    _, value, description = await _find(request, key)
    given = body.model_dump(exclude_unset=True)
    if given.get("value", "") is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "value must be a string, not null")
    value = given.get("value", value)
    description = given.get("description", description)
    try:
        await metastore(store, settings).set_variables([(key, value or "", description)])
    except AirloopError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _out(key, value, description)


@router.delete("/variables/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_variable(
    key: str, request: Request, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> Response:
    if not await metastore(store, settings).delete_variable(key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no variable {key!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
