"""/api/v1: health, version and import errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from airloop import __version__
from airloop.api.deps import ServiceStoreDep, SettingsDep, ViewerDep
from airloop.api.live import live_loop_lag
from airloop.api.models import (
    DatabaseHealth,
    Health,
    ImportErrorOut,
    ListOf,
    SchedulerHealth,
    Version,
)
from airloop.api.params import KnownParams, PaginationDep
from airloop.exceptions import AirloopError
from airloop.settings import Settings

router = APIRouter(tags=["Monitoring"], dependencies=[KnownParams])

#: How long the database gets to answer ``SELECT 1``.
DB_TIMEOUT = 3.0
#: A scheduler is healthy while its heartbeat is younger than this many poll intervals
#: (and at least ``MIN_HEARTBEAT_AGE`` seconds: a busy tick may take a while).
HEARTBEAT_INTERVALS = 5
MIN_HEARTBEAT_AGE = 30.0


def heartbeat_limit(settings: Settings) -> float:
    """Seconds after which a scheduler's heartbeat is too old to call it healthy."""
    return max(MIN_HEARTBEAT_AGE, HEARTBEAT_INTERVALS * settings.scheduler_poll_interval)


@router.get("/health", response_model=Health)
async def health(
    request: Request,
    service: ServiceStoreDep,
    settings: SettingsDep,
) -> Health:
    """The database (it answers the heartbeat query within 3 s: one query, not a
    ``SELECT 1`` first) and the latest scheduler heartbeat; in ``airloop standalone``
    the loop lag is the watchdog's live value. Open without signing in (load
    balancers, monitors), as Airflow's; to someone not signed in it gives the statuses
    only: no host, pid or database error text."""
    signed_in = getattr(request.state, "user", None) is not None
    error: str | None = None
    beat = None
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            beat = await service.latest_heartbeat()
    except TimeoutError:
        error = f"no answer within {DB_TIMEOUT:g} s"
    except AirloopError as exc:
        error = str(exc)
    if error is not None and not signed_in:
        error = "the database cannot be read (sign in for the cause)"
    database = DatabaseHealth(status="unhealthy" if error else "healthy", error=error)
    if beat is None:
        return Health(
            database=database,
            scheduler=SchedulerHealth(
                status="unknown",
                latest_heartbeat=None,
                hostname=None,
                pid=None,
                loop_lag=None,
                running_tasks=None,
                active_runs=None,
            ),
        )
    age = (datetime.now(UTC) - beat.heartbeat_at).total_seconds()
    alive = beat.state != "stopped" and age < heartbeat_limit(settings)
    return Health(
        database=database,
        scheduler=SchedulerHealth(
            status="healthy" if alive else "unhealthy",
            latest_heartbeat=beat.heartbeat_at,
            hostname=beat.hostname if signed_in else None,
            pid=beat.pid if signed_in else None,
            loop_lag=_loop_lag(request, beat.loop_lag),
            running_tasks=beat.running_tasks,
            active_runs=beat.active_runs,
        ),
    )


def _loop_lag(request: Request, recorded: float | None) -> float | None:
    """The scheduler in this process (standalone): its watchdog's latest ping, not the
    value the last heartbeat wrote (up to a poll interval old)."""
    live = live_loop_lag(request.app)
    return recorded if live is None else live


@router.get("/version", response_model=Version)
async def version(user: ViewerDep) -> Version:
    return Version(version=__version__)


@router.get("/importErrors", response_model=ListOf[ImportErrorOut])
async def import_errors(
    user: ViewerDep, service: ServiceStoreDep, page: PaginationDep
) -> ListOf[ImportErrorOut]:
    """DAG files that could not be loaded at the scheduler's last parse, by file."""
    errors = await service.import_errors()
    chosen = errors[page.offset : page.offset + page.limit]
    return ListOf[ImportErrorOut](
        items=[
            ImportErrorOut(fileloc=e.fileloc, line=e.line, message=e.message, traceback=e.traceback)
            for e in chosen
        ],
        total=len(errors),
    )
