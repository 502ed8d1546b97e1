"""When a DAG's next scheduled run is: its logical date (the start of the next data
interval, as Airflow's "Next Run"), from the serialized schedule and the end of the
last interval a run was created for, as the scheduler's ``_schedule`` decides."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from airloop.core.schedules import (
    ContinuousSchedule,
    CronSchedule,
    OnceSchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
)
from airloop.dagbag.serialized import SerializedDag

_DELTA = re.compile(
    r"^every (?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)$"
)


def _delta(text: str) -> timedelta | None:
    """``every <str(timedelta)>`` (how the serialized DAG writes a timedelta schedule)."""
    match = _DELTA.match(text)
    if match is None:
        return None
    return timedelta(
        days=int(match["days"] or 0),
        hours=int(match["h"]),
        minutes=int(match["m"]),
        seconds=float(match["s"]),
    )


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=1024)
def _parse(text: str, start: datetime | None, tz: str) -> Schedule | None:
    try:
        delta = _delta(text)
        return parse_schedule(
            delta if delta is not None else text, start_date=start, tz=ZoneInfo(tz)
        )
    except (ScheduleError, ValueError, KeyError):
        return None


def schedule_of(data: SerializedDag) -> Schedule | None:
    """The DAG's schedule (None: unscheduled, or one this server cannot read back)."""
    text = data.get("schedule")
    if text is None:
        return None
    # Only @once and timedelta schedules hang on the start date (a cron schedule
    # parsed once serves every DAG with it).
    needs_start = text == "@once" or _delta(text) is not None
    start = _time(data.get("start_date")) if needs_start else None
    return _parse(text, start, data.get("timezone") or "UTC")


@functools.lru_cache(maxsize=4096)
def _next_start(
    schedule: Schedule, begin: datetime, catchup: bool, now: datetime
) -> datetime | None:
    """Cached: a DAG list asks the same (schedule, last interval) of many DAGs, and
    croniter takes a millisecond or two a call."""
    try:
        candidate = schedule.interval_starting_at_or_after(begin)
        if not catchup:
            latest = schedule.latest_interval_ending_by(now)
            if latest.start > candidate.start:
                candidate = latest
    except ScheduleError:
        return None
    return candidate.start


def next_run(
    data: SerializedDag | None,
    *,
    is_paused: bool,
    last_interval_end: datetime | None,
    now: datetime | None = None,
) -> datetime | None:
    """The logical date of the run the scheduler creates next; None when paused,
    unscheduled, ``@continuous`` (it runs when the last run ends) or finished."""
    if data is None or is_paused:
        return None
    schedule = schedule_of(data)
    start = _time(data.get("start_date"))
    if schedule is None or start is None or isinstance(schedule, ContinuousSchedule):
        return None
    end = _time(data.get("end_date"))
    now = now or datetime.now(UTC)
    if isinstance(schedule, OnceSchedule):
        return None if last_interval_end is not None else start
    begin = max(start, last_interval_end) if last_interval_end is not None else start
    if isinstance(schedule, CronSchedule):
        # Cron fires on whole minutes: the latest interval ended by now is the one
        # ended by the minute's start (so one computation serves the whole minute).
        now = now.replace(second=0, microsecond=0)
    first = _next_start(schedule, begin, bool(data.get("catchup", False)), now)
    if first is None or (end is not None and first > end):
        return None
    return first
