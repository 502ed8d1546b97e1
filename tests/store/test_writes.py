"""The lean write path converts datetimes itself: exactly as SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from airloop.store.types import UtcDateTime
from airloop.store.writes import _naive_utc, _sqlite_datetime


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 1, 2, 1, 4, 5, 7, tzinfo=timezone(timedelta(hours=-5))),
        None,
    ],
)
def test_datetimes_are_stored_as_sqlalchemy_stores_them(value: datetime | None) -> None:
    dialect = sqlite.dialect()
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert _sqlite_datetime(value) == processor(value)
    expected = None if value is None else value.astimezone(UTC).replace(tzinfo=None)
    assert _naive_utc(value) == expected
