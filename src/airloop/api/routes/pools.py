"""/api/v1/pools: pools in the database (table ``slot_pool``).

The settings' ``pools`` seed the table (a pool missing from it is added with the
settings' size, here on first use and by the scheduler service at start); from then
on the table is the source: the scheduler reads it on each heartbeat and resizes
live. ``default_pool`` cannot be deleted. Reads: any user; changes: admin.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from airloop.api.deps import AdminDep, SettingsDep, StoreDep, ViewerDep
from airloop.api.params import KnownParams, PaginationDep, page_of
from airloop.core.pools import DEFAULT_POOL
from airloop.settings import Settings
from airloop.store.connections import RecordExistsError
from airloop.store.pools import (
    PoolRecord,
    create_pool,
    delete_pool,
    list_pools,
    seed_pools,
    update_pool,
)
from airloop.store.runs import Store

router = APIRouter(tags=["pools"], dependencies=[KnownParams])

_NAME = Field(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_.\-]+$")


class PoolBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, _NAME]
    slots: Annotated[int, Field(ge=0)]
    description: str | None = None


class PoolPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: Annotated[int | None, Field(ge=0)] = None
    description: str | None = None


def _out(pool: PoolRecord) -> dict[str, Any]:
    return {
        "name": pool.name,
        "slots": pool.slots,
        "description": pool.description,
        "occupied": pool.occupied,
        "running": pool.running,
        "queued": pool.queued,
        "scheduled": pool.scheduled,
        "open": pool.open,
    }


async def _seeded(request: Request, store: Store, settings: Settings) -> None:
    """The settings' pools in the table, once per app (a pool deleted afterwards stays
    deleted until the scheduler service starts again: it seeds too)."""
    if getattr(request.app.state, "pools_seeded", False):
        return
    await seed_pools(store, settings.pools)
    request.app.state.pools_seeded = True


async def _one(store: Store, name: str) -> PoolRecord:
    found = await list_pools(store, name)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pool {name!r}")
    return found[0]


@router.get("/pools")
async def get_pools(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: ViewerDep,
    page: PaginationDep,
) -> dict[str, Any]:
    await _seeded(request, store, settings)
    return page_of([_out(p) for p in await list_pools(store)], page)


@router.get("/pools/{name}")
async def get_pool(
    name: str, request: Request, store: StoreDep, settings: SettingsDep, user: ViewerDep
) -> dict[str, Any]:
    await _seeded(request, store, settings)
    return _out(await _one(store, name))


@router.post("/pools", status_code=status.HTTP_201_CREATED)
async def post_pool(
    body: PoolBody, request: Request, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> dict[str, Any]:
    await _seeded(request, store, settings)
    try:
        await create_pool(store, body.name, body.slots, body.description)
    except RecordExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _out(await _one(store, body.name))


@router.patch("/pools/{name}")
async def patch_pool(
    name: str,
    body: PoolPatch,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: AdminDep,
) -> dict[str, Any]:
    """Resize or describe a pool; a running scheduler takes the size at its next
    heartbeat (slots in use stay taken)."""
    await _seeded(request, store, settings)
    values = body.model_dump(exclude_unset=True)
    if values.get("slots", 0) is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "slots must be an integer >= 0")
    if not await update_pool(store, name, **values):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pool {name!r}")
    return _out(await _one(store, name))


@router.delete("/pools/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_pool(
    name: str, request: Request, store: StoreDep, settings: SettingsDep, user: AdminDep
) -> Response:
    """Delete a pool (not ``default_pool``). Runs already using it keep their slots
    and start nothing more in it; new runs of DAGs naming it fail to start."""
    if name == DEFAULT_POOL:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{DEFAULT_POOL!r} cannot be deleted (resize it instead)"
        )
    await _seeded(request, store, settings)
    if not await delete_pool(store, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pool {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
