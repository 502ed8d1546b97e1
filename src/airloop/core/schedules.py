"""Schedules: when DAG runs are due. Pure functions of (schedule, dates, now).

As in Airflow, a scheduled run covers a data interval ``[start, end)`` and is due once
``end`` has passed; its logical date is the interval's start. Cron schedules are
evaluated in the DAG's time zone (so ``0 2 * * *`` means 02:00 local, across daylight
saving changes); every date airloop stores is UTC.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class ScheduleError(ValueError):
    """A schedule that cannot be understood."""


@dataclass(frozen=True, slots=True)
class DataInterval:
    start: datetime
    end: datetime


class Schedule(ABC):
    #: Covers time in intervals (so it can be backfilled); not @once / @continuous.
    periodic: bool = True
    #: At most this many runs at once (Airflow's active_runs_limit; None: max_active_runs).
    active_runs_limit: int | None = None

    @abstractmethod
    def interval_starting_at_or_after(self, moment: datetime) -> DataInterval:
        """The first interval whose start is at or after ``moment``."""

    @abstractmethod
    def interval_after(self, interval: DataInterval) -> DataInterval:
        """The next interval: it starts where ``interval`` ends (no gap, no overlap)."""

    @abstractmethod
    def latest_interval_ending_by(self, moment: datetime) -> DataInterval:
        """The last interval whose end is at or before ``moment``."""

    @abstractmethod
    def describe(self) -> str: ...


class CronSchedule(Schedule):
    def __init__(self, expression: str, tz: ZoneInfo) -> None:
        expression = PRESETS.get(expression, expression)
        if not croniter.is_valid(expression):
            raise ScheduleError(f"invalid cron expression {expression!r}")
        self.expression = expression
        self.tz = tz

    def interval_starting_at_or_after(self, moment: datetime) -> DataInterval:
        local = moment.astimezone(self.tz)
        start = croniter(self.expression, local - timedelta(microseconds=1)).get_next(datetime)
        end = croniter(self.expression, start).get_next(datetime)
        return DataInterval(start.astimezone(UTC), end.astimezone(UTC))

    def interval_after(self, interval: DataInterval) -> DataInterval:
        end = croniter(self.expression, interval.end.astimezone(self.tz)).get_next(datetime)
        return DataInterval(interval.end, end.astimezone(UTC))

    def latest_interval_ending_by(self, moment: datetime) -> DataInterval:
        local = moment.astimezone(self.tz) + timedelta(microseconds=1)
        end = croniter(self.expression, local).get_prev(datetime)
        start = croniter(self.expression, end).get_prev(datetime)
        return DataInterval(start.astimezone(UTC), end.astimezone(UTC))

    def describe(self) -> str:
        return f"cron {self.expression} ({self.tz.key})"


class DeltaSchedule(Schedule):
    """Every ``delta`` from the DAG's start date."""

    def __init__(self, delta: timedelta, anchor: datetime) -> None:
        if delta <= timedelta(0):
            raise ScheduleError(f"a timedelta schedule must be positive, got {delta}")
        self.delta = delta
        self.anchor = anchor.astimezone(UTC)

    def interval_starting_at_or_after(self, moment: datetime) -> DataInterval:
        steps = max(0, -(-(moment - self.anchor) // self.delta))  # ceil, not before anchor
        start = self.anchor + steps * self.delta
        return DataInterval(start, start + self.delta)

    def interval_after(self, interval: DataInterval) -> DataInterval:
        return DataInterval(interval.end, interval.end + self.delta)

    def latest_interval_ending_by(self, moment: datetime) -> DataInterval:
        steps = (moment - self.anchor) // self.delta  # whole intervals ended by then
        end = self.anchor + steps * self.delta
        return DataInterval(end - self.delta, end)

    def describe(self) -> str:
        return f"every {self.delta}"


class OnceSchedule(Schedule):
    """``@once``: one run, due once the start date has passed; its data interval is
    ``[start_date, start_date]`` (as Airflow's OnceTimetable). Then none."""

    periodic = False

    def __init__(self, anchor: datetime) -> None:
        self.anchor = anchor.astimezone(UTC)

    def interval_starting_at_or_after(self, moment: datetime) -> DataInterval:
        return DataInterval(self.anchor, self.anchor)

    def interval_after(self, interval: DataInterval) -> DataInterval:
        raise ScheduleError("@once has no interval after its one run")

    def latest_interval_ending_by(self, moment: datetime) -> DataInterval:
        return DataInterval(self.anchor, self.anchor)

    def describe(self) -> str:
        return "@once"


class ContinuousSchedule(Schedule):
    """``@continuous``: a new run as soon as the previous one ends (max_active_runs
    must be 1). Its data interval runs from the previous run's end (or the start
    date) to the moment it is created, as Airflow's ContinuousTimetable."""

    periodic = False
    active_runs_limit = 1

    def interval_starting_at_or_after(self, moment: datetime) -> DataInterval:
        return DataInterval(moment, moment)

    def interval_after(self, interval: DataInterval) -> DataInterval:
        raise ScheduleError("@continuous has no fixed next interval")

    def latest_interval_ending_by(self, moment: datetime) -> DataInterval:
        return DataInterval(moment, moment)

    def describe(self) -> str:
        return "@continuous"


def parse_schedule(
    value: str | timedelta | None, *, start_date: datetime | None, tz: ZoneInfo
) -> Schedule | None:
    """``None`` (manual only), a cron string or preset, ``@once``, ``@continuous``, or
    a ``timedelta``."""
    if value is None:
        return None
    if value == "@once":
        if start_date is None:
            raise ScheduleError("a @once schedule needs a start_date")
        return OnceSchedule(start_date)
    if value == "@continuous":
        return ContinuousSchedule()
    if isinstance(value, timedelta):
        if start_date is None:
            raise ScheduleError("a timedelta schedule needs a start_date")
        return DeltaSchedule(value, start_date)
    if isinstance(value, str):
        return CronSchedule(value, tz)
    raise ScheduleError(f"schedule must be a cron string, a preset, a timedelta or None: {value!r}")


def due_intervals(
    schedule: Schedule,
    *,
    start_date: datetime,
    end_date: datetime | None,
    after: datetime | None,
    now: datetime,
    catchup: bool,
    limit: int = 10_000,
) -> list[DataInterval]:
    """Intervals that are due (ended by ``now``) and not yet run, oldest first, at
    most ``limit`` of them.

    ``after`` is the end of the last interval a run was created for (None: none yet).
    Without ``catchup`` only the latest due interval is returned (if it is new).
    ``@once``: its one interval until it has run; ``@continuous``: one interval from
    ``after`` (or the start date) to ``now`` (the caller keeps one run at a time).
    """
    if limit <= 0:
        return []
    if isinstance(schedule, OnceSchedule):
        if after is not None or start_date > now:
            return []
        return [DataInterval(start_date, start_date)]
    if isinstance(schedule, ContinuousSchedule):
        if start_date > now or (end_date is not None and now > end_date):
            return []
        begin = max(start_date, after) if after is not None else start_date
        return [DataInterval(begin, now)]
    begin = max(start_date, after) if after is not None else start_date
    if not catchup:
        latest = schedule.latest_interval_ending_by(now)
        if latest.start < begin or (end_date is not None and latest.start > end_date):
            # Past the end date: the last interval the DAG may run, if still new.
            if end_date is not None and latest.start > end_date:
                last = due_intervals(
                    schedule,
                    start_date=start_date,
                    end_date=end_date,
                    after=after,
                    now=now,
                    catchup=True,
                )
                return last[-1:]
            return []
        return [latest]
    due: list[DataInterval] = []
    interval = schedule.interval_starting_at_or_after(begin)
    while interval.end <= now and len(due) < limit:
        if end_date is not None and interval.start > end_date:
            break
        due.append(interval)
        interval = schedule.interval_after(interval)
    return due
