"""/api/v1: health, version and import errors."""

from __future__ import annotations

import asyncio
import os
import socket

from fastapi import APIRouter, Request

from airloop import __version__
from airloop.api.deps import ServiceStoreDep, SettingsDep, ViewerDep
from airloop.api.live import live_loop_lag
from airloop.api.models import (
    DatabaseHealth,
    Health,
    ImportErrorOut,
    ListOf,
    LiveScheduler,
    SchedulerHealth,
    Version,
)
from airloop.api.params import KnownParams, PaginationDep
from airloop.exceptions import AirloopError
from airloop.settings import Settings
from airloop.store.records import HeartbeatRow
from airloop.store.scheduler_status import SchedulerStatus
from airloop.store.scheduler_status import heartbeat_limit as stale_after

router = APIRouter(tags=["Monitoring"], dependencies=[KnownParams])

#: How long the database gets to answer ``SELECT 1``.
DB_TIMEOUT = 3.0


def heartbeat_limit(settings: Settings) -> float:
    """Seconds after which a heartbeat without an expiry is too old to call its
    scheduler healthy (5 poll intervals, at least 30 s)."""
    return stale_after(settings.scheduler_poll_interval)


@router.get("/health", response_model=Health)
async def health(
    request: Request,
    service: ServiceStoreDep,
    settings: SettingsDep,
) -> Health:
    """The database (it answers the registry query within 3 s: no ``SELECT 1``
    first) and the schedulers: every live one, and the newest as
    ``scheduler`` (alive on the database's clock: ADR 0041); in ``airloop standalone``
    the loop lag of the scheduler in this process is the watchdog's live value. Open
    without signing in (load balancers, monitors), as Airflow's; to someone not
    signed in it gives the statuses only: no host, pid or database error text."""
    signed_in = getattr(request.state, "user", None) is not None
    error: str | None = None
    statuses: list[SchedulerStatus] = []
    oldest: HeartbeatRow | None = None
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            statuses = await service.schedulers(stale_after=heartbeat_limit(settings))
            if not statuses:  # none beat in a day: the newest row, if any, says so
                oldest = await service.latest_heartbeat()
    except TimeoutError:
        error = f"no answer within {DB_TIMEOUT:g} s"
    except AirloopError as exc:
        error = str(exc)
    if error is not None and not signed_in:
        error = "the database cannot be read (sign in for the cause)"
    database = DatabaseHealth(status="unhealthy" if error else "healthy", error=error)
    live = [s for s in statuses if s.alive]
    newest = live[-1] if live else (statuses[-1] if statuses else None)
    beat = newest.row if newest is not None else oldest
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
    return Health(
        database=database,
        scheduler=SchedulerHealth(
            status="healthy" if live else "unhealthy",
            latest_heartbeat=beat.heartbeat_at,
            hostname=beat.hostname if signed_in else None,
            pid=beat.pid if signed_in else None,
            loop_lag=_loop_lag(request, beat.loop_lag),
            running_tasks=beat.running_tasks,
            active_runs=beat.active_runs,
        ),
        schedulers=[_live(request, s, signed_in) for s in live],
    )


def _live(request: Request, status: SchedulerStatus, signed_in: bool) -> LiveScheduler:
    row = status.row
    here = row.pid == os.getpid() and row.hostname == socket.gethostname()
    return LiveScheduler(
        id=row.id,
        hostname=row.hostname if signed_in else None,
        pid=row.pid if signed_in else None,
        mode=row.mode,
        latest_heartbeat=row.heartbeat_at,
        heartbeat_age=status.heartbeat_age,
        dags_owned=row.dags_owned,
        loop_lag=_loop_lag(request, row.loop_lag) if here else row.loop_lag,
        running_tasks=row.running_tasks,
        active_runs=row.active_runs,
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
