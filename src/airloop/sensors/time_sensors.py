"""Sensors that wait for a moment: ``TimeSensor``, ``TimeDeltaSensor``,
``DateTimeSensor``, ``DayOfWeekSensor``.

Each works out the moment it waits for once, when it starts, and sleeps until then
(one timer on the loop, checked against the wall clock when it fires) instead of
poking every ``poke_interval``: ``poke_interval`` and ``exponential_backoff`` have no
effect on them. ``timeout`` and ``soft_fail`` apply as for any sensor.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.authoring.sensor import BaseSensor
from airloop.exceptions import DagDefinitionError, SensorTimeout, SkipTask

if TYPE_CHECKING:
    from datetime import tzinfo

    from airloop.authoring.context import Context


def _zone(context: Context) -> tzinfo:
    found = getattr(context.dag, "timezone", None)
    return found if found is not None else UTC


class _UntilSensor(BaseSensor):
    """Sleeps until ``target(context)`` (None: a moment that never comes)."""

    def target(self, context: Context) -> datetime | None:
        raise NotImplementedError

    def poke(self, context: Context) -> bool:
        target = self.target(context)
        return target is not None and datetime.now(UTC) >= target

    async def execute(self, context: Context) -> Any:
        started = time.monotonic()
        deadline = started + self.timeout
        target = self.target(context)
        if target is None:
            context.log.info("the condition cannot become true in this run; waiting for timeout")
        else:
            context.log.info("waiting until %s", target.isoformat())
        while True:
            now = datetime.now(UTC)
            if target is not None and now >= target:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                waited = time.monotonic() - started
                what = "a moment that does not come" if target is None else target.isoformat()
                message = (
                    f"sensor {self.task_id!r} timed out after {waited:.1f}s waiting for "
                    f"{what} (timeout {self.timeout:g}s)"
                )
                if self.soft_fail:
                    raise SkipTask(message)
                raise SensorTimeout(message)
            wait = left if target is None else min(left, (target - now).total_seconds())
            await asyncio.sleep(max(wait, 0.0))


class TimeSensor(_UntilSensor):
    """Airflow's ``TimeSensor``: waits until ``target_time`` (a time of day) on the day
    the sensor starts, in the DAG's timezone (UTC unless the DAG says otherwise; a
    ``target_time`` with its own tzinfo keeps it). Past that time it succeeds at once."""

    def __init__(self, *, target_time: time_of_day, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_time, time_of_day):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: target_time must be a datetime.time, got {target_time!r}"
            )
        self.target_time = target_time

    def target(self, context: Context) -> datetime:
        zone = self.target_time.tzinfo or _zone(context)
        today = datetime.now(zone).date()
        return datetime.combine(today, self.target_time.replace(tzinfo=zone)).astimezone(UTC)


class TimeDeltaSensor(_UntilSensor):
    """Airflow's ``TimeDeltaSensor``: waits until ``delta`` after the run's data
    interval end; for a run without a data interval (a manual run), after its logical
    date; for a run with neither, after the moment the sensor started."""

    def __init__(self, *, delta: timedelta, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: delta must be a timedelta, got {delta!r}"
            )
        self.delta = delta

    def target(self, context: Context) -> datetime:
        run = context.dag_run
        base = run.data_interval_end or run.logical_date or datetime.now(UTC)
        return base + self.delta


class DateTimeSensor(_UntilSensor):
    """Airflow's ``DateTimeSensor``: waits until ``target_time``, a datetime or a
    templated ISO 8601 string (``"{{ data_interval_end + macros.timedelta(hours=1) }}"``);
    a time without a zone is UTC."""

    template_fields: ClassVar[tuple[str, ...]] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(target_time, datetime):
            target_time = target_time.isoformat()  # as Airflow: templated as a string
        if not isinstance(target_time, str):
            raise DagDefinitionError(
                f"sensor {self.task_id!r}: target_time must be a datetime or a string, "
                f"got {type(target_time).__name__}"
            )
        self.target_time = target_time

    def target(self, context: Context) -> datetime:
        try:
            found = datetime.fromisoformat(str(self.target_time).strip())
        except ValueError:
            raise ValueError(
                f"sensor {self.task_id!r}: target_time {self.target_time!r} is not an "
                "ISO 8601 date and time"
            ) from None
        if found.tzinfo is None:
            found = found.replace(tzinfo=UTC)
        return found.astimezone(UTC)


class WeekDay(enum.IntEnum):
    """Airflow's ``WeekDay`` (ISO numbers: Monday is 1)."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        if isinstance(day, WeekDay):
            return int(day)
        if isinstance(day, str) and day.upper() in cls.__members__:
            return int(cls[day.upper()])
        names = ", ".join(m.title() for m in cls.__members__)
        raise ValueError(f"{day!r} is not a day of the week ({names})")


class DayOfWeekSensor(_UntilSensor):
    """Airflow's ``DayOfWeekSensor``: waits until it is one of ``week_day`` (a name,
    a ``WeekDay``, or a set/list of them) in the DAG's timezone; it sleeps until the
    start of the next such day. With ``use_task_logical_date=True`` the run's logical
    date is checked instead: it cannot change, so a wrong day waits for the timeout
    (as in Airflow, where it pokes until then)."""

    def __init__(
        self,
        *,
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        items = [week_day] if isinstance(week_day, (str, WeekDay)) else week_day
        try:
            days = frozenset(WeekDay.convert(d) for d in items)
        except (TypeError, ValueError) as exc:
            raise DagDefinitionError(f"sensor {self.task_id!r}: week_day: {exc}") from None
        if not days:
            raise DagDefinitionError(f"sensor {self.task_id!r}: week_day is empty")
        self.week_day = week_day
        self._days = days
        self.use_task_logical_date = bool(use_task_logical_date)

    def target(self, context: Context) -> datetime | None:
        zone = _zone(context)
        if self.use_task_logical_date:
            if context.dag_run.logical_date is None:
                raise ValueError(
                    f"sensor {self.task_id!r}: use_task_logical_date=True needs a run with "
                    "a logical date, and this run has none"
                )
            day = context.logical_date.astimezone(zone)
            return datetime.now(UTC) if day.isoweekday() in self._days else None
        now = datetime.now(zone)
        for ahead in range(8):
            date = now.date() + timedelta(days=ahead)
            if date.isoweekday() in self._days:
                if ahead == 0:
                    return now.astimezone(UTC)
                midnight = datetime.combine(date, time_of_day(), tzinfo=zone)
                return midnight.astimezone(UTC)
        return None  # unreachable: every day is within a week


__all__ = [
    "DateTimeSensor",
    "DayOfWeekSensor",
    "TimeDeltaSensor",
    "TimeSensor",
    "WeekDay",
]
