"""Schedules: cron, presets, timedelta, catch-up, time zones, end dates."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airloop.core.schedules import (
    CronSchedule,
    DataInterval,
    ScheduleError,
    due_intervals,
    parse_schedule,
)

UTC_TZ = ZoneInfo("UTC")


def d(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def test_daily_catchup_creates_exactly_the_missed_runs_oldest_first() -> None:
    s = parse_schedule("@daily", start_date=d(1), tz=UTC_TZ)
    assert s is not None
    due = due_intervals(s, start_date=d(1), end_date=None, after=None, now=d(5, 10), catchup=True)
    assert due == [DataInterval(d(i), d(i + 1)) for i in range(1, 5)]
    # Later: only what came due since the last run's interval end.
    due = due_intervals(s, start_date=d(1), end_date=None, after=d(5), now=d(6, 1), catchup=True)
    assert due == [DataInterval(d(5), d(6))]
    assert (
        due_intervals(s, start_date=d(1), end_date=None, after=d(6), now=d(6, 23), catchup=True)
        == []
    )


def test_without_catchup_only_the_latest_interval_runs() -> None:
    s = parse_schedule("0 0 * * *", start_date=d(1), tz=UTC_TZ)
    assert s is not None
    due = due_intervals(s, start_date=d(1), end_date=None, after=None, now=d(5, 10), catchup=False)
    assert due == [DataInterval(d(4), d(5))]


def test_end_date_and_unaligned_start() -> None:
    s = parse_schedule("@daily", start_date=d(1, 15), tz=UTC_TZ)
    assert s is not None
    due = due_intervals(s, start_date=d(1, 15), end_date=d(3), after=None, now=d(9), catchup=True)
    # The first full interval starts at the first tick at or after the start date.
    assert due == [DataInterval(d(2), d(3)), DataInterval(d(3), d(4))]


def test_timedelta_schedules_step_from_the_start_date() -> None:
    s = parse_schedule(timedelta(hours=6), start_date=d(1, 3), tz=UTC_TZ)
    assert s is not None
    due = due_intervals(s, start_date=d(1, 3), end_date=None, after=None, now=d(2, 4), catchup=True)
    assert [i.start for i in due] == [d(1, 3), d(1, 9), d(1, 15), d(1, 21)]
    with pytest.raises(ScheduleError, match="needs a start_date"):
        parse_schedule(timedelta(hours=1), start_date=None, tz=UTC_TZ)


def test_cron_follows_the_dags_time_zone_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")
    s = CronSchedule("0 2 * * *", paris)
    # 2026-03-29: clocks go forward at 02:00 in Paris; the run after moves by 23 h in UTC.
    first = s.interval_starting_at_or_after(datetime(2026, 3, 27, 12, tzinfo=UTC))
    assert first.start == datetime(2026, 3, 28, 1, tzinfo=UTC)  # 02:00 CET
    # 02:00 does not exist on the 29th: that day's run is at 03:00 CEST (01:00 UTC).
    assert first.end == datetime(2026, 3, 29, 1, tzinfo=UTC)
    second = s.interval_after(first)
    assert second == DataInterval(first.end, datetime(2026, 3, 30, 0, tzinfo=UTC))
    # Intervals chain with no gap across the change.
    due = due_intervals(
        s,
        start_date=datetime(2026, 3, 27, 12, tzinfo=UTC),
        end_date=None,
        after=None,
        now=datetime(2026, 4, 1, tzinfo=UTC),
        catchup=True,
    )
    assert all(a.end == b.start for a, b in itertools.pairwise(due))
    assert len(due) == 4
    summer = s.interval_starting_at_or_after(datetime(2026, 6, 1, tzinfo=UTC))
    assert summer.start == datetime(2026, 6, 1, 0, tzinfo=UTC)  # 02:00 CEST


def test_bad_schedules_are_clear_errors() -> None:
    with pytest.raises(ScheduleError, match="invalid cron expression"):
        parse_schedule("every day", start_date=d(1), tz=UTC_TZ)
    with pytest.raises(ScheduleError, match="must be positive"):
        parse_schedule(timedelta(0), start_date=d(1), tz=UTC_TZ)
    assert parse_schedule(None, start_date=None, tz=UTC_TZ) is None


def test_without_catchup_the_latest_interval_wins_whatever_the_limit() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    s = parse_schedule("@daily", start_date=start, tz=UTC_TZ)
    assert s is not None
    now = datetime(2024, 1, 31, 5, tzinfo=UTC)
    for limit in (1, 16, 10_000):
        due = due_intervals(
            s, start_date=start, end_date=None, after=None, now=now, catchup=False, limit=limit
        )
        assert due == [
            DataInterval(datetime(2024, 1, 30, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC))
        ]
    # Already run: nothing new until the next interval ends.
    assert (
        due_intervals(
            s,
            start_date=start,
            end_date=None,
            after=datetime(2024, 1, 31, tzinfo=UTC),
            now=now,
            catchup=False,
        )
        == []
    )
    # Catch-up honours the limit, oldest first.
    assert [
        i.start.day
        for i in due_intervals(
            s, start_date=start, end_date=None, after=None, now=now, catchup=True, limit=3
        )
    ] == [1, 2, 3]


def test_once_is_due_once_at_its_start_date() -> None:
    once = parse_schedule("@once", start_date=d(5), tz=UTC_TZ)
    assert once is not None
    assert not once.periodic
    kw: dict[str, Any] = {"start_date": d(5), "end_date": None, "catchup": True}
    assert due_intervals(once, after=None, now=d(4), **kw) == []
    assert due_intervals(once, after=None, now=d(9), **kw) == [DataInterval(d(5), d(5))]
    assert due_intervals(once, after=d(5), now=d(9), **kw) == []
    with pytest.raises(ScheduleError, match="@once schedule needs a start_date"):
        parse_schedule("@once", start_date=None, tz=UTC_TZ)


def test_continuous_covers_from_the_last_run_to_now() -> None:
    loop = parse_schedule("@continuous", start_date=d(1), tz=UTC_TZ)
    assert loop is not None
    assert loop.active_runs_limit == 1
    kw: dict[str, Any] = {"start_date": d(1), "end_date": d(20), "catchup": False}
    assert due_intervals(loop, after=None, now=d(3), **kw) == [DataInterval(d(1), d(3))]
    assert due_intervals(loop, after=d(3, 5), now=d(4), **kw) == [DataInterval(d(3, 5), d(4))]
    assert due_intervals(loop, after=d(3), now=d(4), limit=0, **kw) == []
    assert due_intervals(loop, after=d(3), now=d(21), **kw) == []  # past the end date
