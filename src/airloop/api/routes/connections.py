"""/api/v1/connections: connections in the metadata database, through
``airloop.connections`` (encrypted at rest with ``fernet_key``, as the CLI writes
them). The password is write-only: answers say ``has_password``, never the value;
the extra comes back with the values of sensitive keys masked. Reads: any user;
changes: admin."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from airloop.api.deps import AdminDep, SettingsDep, StoreDep, ViewerDep
from airloop.api.params import KnownParams, PaginationDep, page_of
from airloop.connections.metastore import MetastoreSource
from airloop.connections.model import Connection
from airloop.core.masking import MASK, redact
from airloop.exceptions import AirloopError
from airloop.settings import Settings
from airloop.store.connections import ConnectionStore, RecordExistsError
from airloop.store.runs import Store

router = APIRouter(tags=["connections"], dependencies=[KnownParams])

_ID = Field(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.\-]+$")


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conn_type: str | None = None
    description: str | None = None
    host: str | None = None
    schema_: Annotated[str | None, Field(alias="schema")] = None
    login: str | None = None
    password: str | None = None
    port: Annotated[int | None, Field(ge=0, le=65535)] = None
    #: A JSON object, as text or as an object.
    extra: str | dict[str, Any] | None = None


class ConnectionBody(_Fields):
    conn_id: Annotated[str, _ID]


class ConnectionPatch(_Fields):
    pass


def metastore(store: Store, settings: Settings) -> MetastoreSource:
    """The metadata database as ``airloop.connections`` sees it, on the API's pool."""
    return MetastoreSource(
        settings.database_url, settings.fernet_key, store=ConnectionStore(store.engine)
    )


def _masked_extra(conn: Connection) -> str | None:
    if not conn.extra:
        return conn.extra
    return json.dumps(redact(conn.extra_dejson))


def _out(conn: Connection) -> dict[str, Any]:
    return {
        "conn_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "description": conn.description,
        "host": conn.host,
        "schema": conn.schema,
        "login": conn.login,
        "port": conn.port,
        "extra": _masked_extra(conn),
        "has_password": bool(conn.password),
    }


def _fields(body: _Fields) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True, by_alias=True)
    extra = values.get("extra")
    if isinstance(extra, dict):
        values["extra"] = json.dumps(extra)
    return values


def _keep_masked(sent: Any, stored: Any) -> Any:
    """``sent`` with each ``***`` the answer showed in place of a stored value put back
    (an edited extra comes back with the masks it was shown)."""
    if sent == MASK and stored is not None:
        return stored
    if isinstance(sent, dict) and isinstance(stored, dict):
        return {k: _keep_masked(v, stored.get(k)) for k, v in sent.items()}
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [_keep_masked(v, old) for v, old in zip(sent, stored, strict=True)]
    return sent


def _patched_extra(values: dict[str, Any], current: Connection) -> None:
    """A patch's extra keeps the stored values behind the masks it carries."""
    extra = values.get("extra")
    if not extra or not current.extra:
        return
    try:
        sent, stored = json.loads(extra), json.loads(current.extra)
    except ValueError:
        return  # not JSON: the connection model refuses it with its own message
    values["extra"] = json.dumps(_keep_masked(sent, stored))


def _bad(exc: AirloopError) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


async def _find(db: MetastoreSource, conn_id: str) -> Connection:
    try:
        found = await db.get_connection(conn_id)
    except AirloopError as exc:  # a key that cannot decrypt it
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no connection {conn_id!r}")
    return found


@router.get("/connections")
async def get_connections(
    store: StoreDep,
    settings: SettingsDep,
    user: ViewerDep,
    page: PaginationDep,
) -> dict[str, Any]:
    try:
        found = await metastore(store, settings).connections()
    except AirloopError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return page_of([_out(c) for c in found], page)


@router.get("/connections/{conn_id}")
async def get_connection(
    conn_id: str, store: StoreDep, settings: SettingsDep, user: ViewerDep
) -> dict[str, Any]:
    return _out(await _find(metastore(store, settings), conn_id))


@router.post("/connections", status_code=status.HTTP_201_CREATED)
async def post_connection(
    body: ConnectionBody, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> dict[str, Any]:
    db = metastore(store, settings)
    try:
        conn = Connection(**_fields(body))
        await db.add_connections([conn])
    except RecordExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AirloopError as exc:
        raise _bad(exc) from None
    return _out(conn)


@router.patch("/connections/{conn_id}")
async def patch_connection(
    conn_id: str,
    body: ConnectionPatch,
    store: StoreDep,
    settings: SettingsDep,
    user: AdminDep,
) -> dict[str, Any]:
    """Change the fields given (``"password": null`` removes the password; leaving
    it out keeps it; a ``***`` in the extra keeps the stored value it stands for)."""
    db = metastore(store, settings)
    current = await _find(db, conn_id)
    try:
        values = _fields(body)
        _patched_extra(values, current)
        changed = replace(current, **values)
        await db.add_connections([changed], overwrite=True)
    except AirloopError as exc:
        raise _bad(exc) from None
    return _out(changed)


@router.delete("/connections/{conn_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_connection(
    conn_id: str, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> Response:
    if not await metastore(store, settings).delete_connection(conn_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no connection {conn_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
