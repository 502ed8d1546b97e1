"""The lean write path converts datetimes itself, exactly as SQLAlchemy would, and
writes every column of every row on each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from airloop.core.states import TaskState
from airloop.store.records import NewTaskInstance, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.ti_statement import MYSQL_CHUNK, POSTGRESQL_CHUNK
from airloop.store.types import UtcDateTime
from airloop.store.writes import _naive_utc, _sqlite_datetime

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


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


async def test_new_task_instances_and_plain_updates_across_chunks(store: Store) -> None:
    """Every column of a plain update lands on its own row, across the multi-row
    statements' chunks; a new run's rows start as SQLAlchemy's insert made them."""
    n = max(POSTGRESQL_CHUNK, MYSQL_CHUNK) + 3
    ids = [f"t{i:05d}" for i in range(n)]
    pk = await store.create_run(
        dag_id="d",
        run_id="r",
        run_type="manual",
        logical_date=T0,
        params={},
        task_instances=[NewTaskInstance(t, "p", 2, i, 3, operator="op") for i, t in enumerate(ids)],
    )
    first = {t.task_id: t for t in await store.task_instances(pk)}
    assert len(first) == n
    row = first[ids[7]]
    assert (row.map_index, row.state, row.try_number, row.max_tries) == (-1, TaskState.NONE, 0, 3)
    assert (row.pool, row.pool_slots, row.priority_weight, row.operator) == ("p", 2, 7, "op")
    assert row.queued_at is None
    assert row.updated_at is not None
    later = T0 + timedelta(seconds=1)
    updates = [
        TIUpdate(
            pk,
            t,
            -1,
            TaskState.SUCCESS if i % 2 else TaskState.UP_FOR_RETRY,
            1,
            queued_at=T0,  # shared by every row: converted once
            start_date=T0 + timedelta(microseconds=i),
            end_date=later if i % 2 else None,
            duration=i / 4,
            hostname=f"h{i}",
            executor="local",
            next_retry_at=None if i % 2 else later,
            error=None if i % 2 else f"e{i}",
            rendered_map_index=f"label {i}",
        )
        for i, t in enumerate(ids)
    ]
    assert (await store.write(WriteBatch(ti_updates=updates))).refused == ()
    got = {t.task_id: t for t in await store.task_instances(pk)}
    for i in (0, 1, MYSQL_CHUNK, n - 1):
        u, r = updates[i], got[ids[i]]
        assert (r.state, r.try_number, r.queued_at, r.start_date, r.end_date) == (
            u.state,
            u.try_number,
            u.queued_at,
            u.start_date,
            u.end_date,
        )
        assert (r.duration, r.hostname, r.executor, r.next_retry_at, r.error) == (
            u.duration,
            u.hostname,
            u.executor,
            u.next_retry_at,
            u.error,
        )
        assert r.rendered_map_index == u.rendered_map_index
        assert (r.pool, r.priority_weight) == ("p", i)
