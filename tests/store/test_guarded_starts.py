"""Exactly-once starts (ADR 0041): a start row is written only where the row still holds
the guarded try number; what did not match is refused, except a start the same batch
already committed (re-sent after a lost answer)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airloop.core.states import TaskState
from airloop.exceptions import DatabaseError, TransientDatabaseError
from airloop.store.records import NewTaskInstance, RefusedStart, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.ti_statement import MYSQL_CHUNK, POSTGRESQL_CHUNK

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


async def _run(store: Store, *task_ids: str) -> int:
    return await store.create_run(
        dag_id="d",
        run_id=f"r{len(task_ids)}",
        run_type="manual",
        logical_date=T0,
        params={},
        task_instances=[NewTaskInstance(t, "default_pool", 1, 1, 3) for t in task_ids],
    )


def _start(pk: int, task_id: str, try_number: int, at: datetime, guard: int) -> TIUpdate:
    return TIUpdate(pk, task_id, -1, TaskState.QUEUED, try_number, queued_at=at, guard=guard)


async def _rows(store: Store, pk: int) -> dict[str, tuple[TaskState, int, datetime | None]]:
    return {t.task_id: (t.state, t.try_number, t.queued_at) for t in await store.task_instances(pk)}


async def test_a_start_whose_guard_matches_is_written(store: Store) -> None:
    pk = await _run(store, "a", "b")
    result = await store.write(WriteBatch(ti_updates=[_start(pk, "a", 1, T0, guard=0)]))
    assert result.refused == ()
    assert (await _rows(store, pk))["a"] == (TaskState.QUEUED, 1, T0)
    # A try resumed under its number: the guard is that number.
    later = T0 + timedelta(seconds=1)
    result = await store.write(WriteBatch(ti_updates=[_start(pk, "a", 1, later, guard=1)]))
    assert result.refused == ()
    assert (await _rows(store, pk))["a"] == (TaskState.QUEUED, 1, later)


async def test_a_start_whose_row_moved_on_is_refused_and_the_rest_written(store: Store) -> None:
    pk = await _run(store, "a", "b", "c")
    other = T0 + timedelta(seconds=5)
    # Another scheduler started a's try 1 first.
    assert (await store.write(WriteBatch(ti_updates=[_start(pk, "a", 1, other, 0)]))).refused == ()
    result = await store.write(
        WriteBatch(
            ti_updates=[
                _start(pk, "a", 1, T0, guard=0),
                _start(pk, "b", 1, T0, guard=0),
                TIUpdate(pk, "c", -1, TaskState.SKIPPED, 0, error="not needed"),
            ]
        )
    )
    assert result.refused == (RefusedStart(pk, "a", -1, 1, 1, TaskState.QUEUED),)
    assert result.refused_keys == {(pk, "a", -1)}
    assert result.refused_runs == {pk}
    rows = await _rows(store, pk)
    assert rows["a"] == (TaskState.QUEUED, 1, other)  # left as the other writer wrote it
    assert rows["b"] == (TaskState.QUEUED, 1, T0)
    assert rows["c"] == (TaskState.SKIPPED, 0, None)


async def test_a_start_of_a_row_that_is_not_there_is_refused(store: Store) -> None:
    pk = await _run(store, "a")
    result = await store.write(WriteBatch(ti_updates=[_start(pk, "gone", 1, T0, guard=0)]))
    assert result.refused == (RefusedStart(pk, "gone", -1, 1, None, None),)


async def test_a_batch_written_again_after_its_commit_counts_its_own_starts(
    store: Store,
) -> None:
    """Scheduler._write re-sends a batch whose answer was lost: the starts it committed
    are found exactly as it wrote them, so they count as started."""
    pk = await _run(store, "a", "b")
    batch = WriteBatch(
        ti_updates=[_start(pk, "a", 1, T0, guard=0), _start(pk, "b", 1, T0, guard=0)]
    )
    assert (await store.write(batch)).refused == ()
    assert (await store.write(batch)).refused == ()
    rows = await _rows(store, pk)
    assert rows["a"] == rows["b"] == (TaskState.QUEUED, 1, T0)
    # ... but not a start of the same try by someone else (another queued_at).
    other = _start(pk, "a", 1, T0 + timedelta(microseconds=1), guard=0)
    refused = (await store.write(WriteBatch(ti_updates=[other]))).refused
    assert refused == (RefusedStart(pk, "a", -1, 1, 1, TaskState.QUEUED),)


async def test_refused_starts_are_found_among_many_chunks(store: Store) -> None:
    """More starts than one multi-row statement holds, a few of them refused: the
    counts of every chunk add up and the re-read names exactly the refused ones."""
    n = max(POSTGRESQL_CHUNK, MYSQL_CHUNK) + 150
    ids = [f"t{i:05d}" for i in range(n)]
    pk = await _run(store, *ids)
    taken = {ids[3], ids[MYSQL_CHUNK + 7], ids[-1]}
    first = [_start(pk, t, 1, T0 - timedelta(seconds=1), 0) for t in sorted(taken)]
    assert (await store.write(WriteBatch(ti_updates=first))).refused == ()
    result = await store.write(WriteBatch(ti_updates=[_start(pk, t, 1, T0, 0) for t in ids]))
    assert {r.task_id for r in result.refused} == taken
    rows = await _rows(store, pk)
    assert sum(1 for _, _, at in rows.values() if at == T0) == n - len(taken)


async def test_concurrent_attempts_in_one_process_start_once(store: Store) -> None:
    """Eight writers on their own connections start the same try at once."""
    pk = await _run(store, "a")
    attempts = [
        store.write(WriteBatch(ti_updates=[_start(pk, "a", 1, T0 + timedelta(seconds=i), 0)]))
        for i in range(8)
    ]
    results = await asyncio.gather(*attempts)
    winners = [i for i, r in enumerate(results) if not r.refused]
    assert len(winners) == 1
    assert (await _rows(store, pk))["a"] == (
        TaskState.QUEUED,
        1,
        T0 + timedelta(seconds=winners[0]),
    )


@pytest.mark.slow
@pytest.mark.timeout(300)  # eight interpreters importing airloop on a busy machine
async def test_concurrent_attempts_from_processes_start_once(
    server_database_url: str,
) -> None:
    """Eight processes, each with its own store, released together, start the same try
    of one task instance: exactly one is told it started it, and the row holds its
    start (try 1, its queued_at)."""
    store = await Store.open(server_database_url)
    racers: list[asyncio.subprocess.Process] = []
    try:
        pk = await _run(store, "a")
        script = Path(__file__).with_name("start_racer.py")
        for i in range(8):
            racers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(script),
                    server_database_url,
                    str(pk),
                    "a",
                    str(i),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for racer in racers:
            assert racer.stdout is not None
            assert await racer.stdout.readline() == b"ready\n"
        for racer in racers:  # go
            assert racer.stdin is not None
            racer.stdin.write(b"go\n")
        answers = [(await racer.communicate())[0].decode().strip() for racer in racers]
        assert [racer.returncode for racer in racers] == [0] * 8
        assert sorted(answers) == ["refused"] * 7 + ["started"]
        winner = answers.index("started")
        assert (await _rows(store, pk))["a"] == (
            TaskState.QUEUED,
            1,
            datetime(2026, 1, 1, 0, 0, 0, winner, tzinfo=UTC),
        )
    finally:
        for racer in racers:
            if racer.returncode is None:
                racer.kill()
                await racer.wait()
        await store.close()


async def test_a_start_too_long_for_its_column_is_an_error(server_database_url: str) -> None:
    """The guarded statement refuses a value too long for its column as the plain one
    does (no cast that would cut it silently)."""
    store = await Store.open(server_database_url)
    try:
        pk = await _run(store, "a")
        too_long = TIUpdate(pk, "a", -1, TaskState.QUEUED, 1, executor="x" * 500, guard=0)
        with pytest.raises(DatabaseError) as refused:
            await store.write(WriteBatch(ti_updates=[too_long]))
        assert not isinstance(refused.value, TransientDatabaseError)
    finally:
        await store.close()


async def test_the_row_counts_are_exact_so_matched_starts_read_nothing_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every backend's count of matched rows is exact, across chunks: a batch whose
    starts all matched takes the fast path, without the re-read."""
    from airloop.store import starts

    rechecked: list[int] = []
    real = starts.recheck

    async def counted(conn: Any, rows: Any) -> list[RefusedStart]:
        rechecked.append(len(rows))
        return await real(conn, rows)

    monkeypatch.setattr(starts, "recheck", counted)
    n = MYSQL_CHUNK + 5
    ids = [f"t{i:05d}" for i in range(n)]
    pk = await _run(store, *ids)
    batch = WriteBatch(ti_updates=[_start(pk, t, 1, T0, guard=0) for t in ids])
    assert (await store.write(batch)).refused == ()
    assert rechecked == []
    # A try resumed under its number.
    again = WriteBatch(ti_updates=[_start(pk, t, 1, T0, guard=1) for t in ids])
    assert (await store.write(again)).refused == ()
    assert rechecked == []
    # The batch re-sent: its starts do not match their guard any more; read back.
    assert (await store.write(batch)).refused == ()
    assert rechecked == [n]
