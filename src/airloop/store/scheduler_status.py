"""Every scheduler in the registry (table ``scheduler_heartbeat``) and whether it is
alive, judged on the database's clock (ADR 0041, "Health"): what ``airloop scheduler
status``, ``/api/v1/health`` and ``/metrics`` report.

A scheduler is alive while it says it runs and its ``expires_at`` (written on the
database's clock by each renewal) is in the future; a row without ``expires_at``
(written before the registry had one) is alive while its heartbeat is younger than
``stale_after`` seconds. Rows of schedulers that stopped or died more than
``KEEP_LISTED`` seconds ago are left out unless asked for: every start adds a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, type_coerce

from airloop.store.db_clock import db_later, db_now
from airloop.store.errors import connect
from airloop.store.records import HeartbeatRow
from airloop.store.runs import Store
from airloop.store.schema import scheduler_heartbeat
from airloop.store.types import UtcDateTime

#: Rows whose heartbeat is older than this (a day) are listed only when asked for.
KEEP_LISTED = 86_400.0
#: A row without ``expires_at`` is alive while its heartbeat is younger than this many
#: poll intervals, and at least ``MIN_HEARTBEAT_AGE`` seconds (a busy pass may take a
#: while).
HEARTBEAT_INTERVALS = 5
MIN_HEARTBEAT_AGE = 30.0

_s = scheduler_heartbeat.c


def heartbeat_limit(poll_interval: float) -> float:
    """Seconds after which a heartbeat without ``expires_at`` is too old to be alive."""
    return max(MIN_HEARTBEAT_AGE, HEARTBEAT_INTERVALS * poll_interval)


@dataclass(frozen=True, slots=True)
class SchedulerStatus:
    """One registry row, with its heartbeat's age and liveness on the database clock."""

    row: HeartbeatRow
    #: Seconds between the last heartbeat and the database's ``now``.
    heartbeat_age: float
    alive: bool


def is_alive(row: HeartbeatRow, now: datetime, stale_after: float) -> bool:
    """Does the scheduler of ``row`` run, as seen at ``now`` (the database's clock)?"""
    if row.state != "running":
        return False
    if row.expires_at is not None:
        return row.expires_at > now
    return (now - row.heartbeat_at).total_seconds() < stale_after


async def scheduler_statuses(
    store: Store, *, stale_after: float, include_old: bool = False
) -> list[SchedulerStatus]:
    """The registry's rows, oldest first: those alive and those that beat within
    ``KEEP_LISTED`` seconds, or every row with ``include_old``. One query."""
    dialect = store.engine.dialect
    query = select(
        scheduler_heartbeat, type_coerce(db_now(dialect), UtcDateTime()).label("db_now")
    ).order_by(_s.id)
    if not include_old:
        query = query.where(
            or_(
                _s.heartbeat_at >= db_later(dialect, -KEEP_LISTED),
                _s.expires_at > db_now(dialect),
            )
        )
    async with connect(store.engine) as conn:
        rows = (await conn.execute(query)).all()
    out: list[SchedulerStatus] = []
    for r in rows:
        values = dict(r._mapping)
        now: datetime = values.pop("db_now")
        row = HeartbeatRow(**values)
        age = (now - row.heartbeat_at).total_seconds()
        out.append(SchedulerStatus(row, max(age, 0.0), is_alive(row, now, stale_after)))
    return out


__all__ = [
    "KEEP_LISTED",
    "SchedulerStatus",
    "heartbeat_limit",
    "is_alive",
    "scheduler_statuses",
]
