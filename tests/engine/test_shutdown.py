"""Embedding the Engine, the sync wrapper, batched writes, and shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from airloop import DAG, DagRunState, TaskState, task
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine, RunResult, run
from airloop.exceptions import RunExistsError
from airloop.settings import Settings

from .support import SETTLED, state_of, ti_rows, ti_states, wait_until


def simple_dag(dag_id: str = "simple") -> DAG:
    with DAG(dag_id) as dag:

        @task
        async def one() -> int:
            return 1

        @task
        def two(x: int) -> int:
            return x + 1

        two(one())
    return dag


# -- embedding --------------------------------------------------------------------------


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_two_runs_in_sequence_on_the_callers_loop(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    loops: list[asyncio.AbstractEventLoop] = []

    with DAG("embedded") as dag:

        @task
        async def where() -> None:
            loops.append(asyncio.get_running_loop())

        where()

    async with Engine(Settings(home=tmp_path)) as engine:
        first = await engine.run(dag)
        second = await engine.run(dag, run_id="second")
        other = await engine.run(simple_dag())
        latest = await engine.store.latest_runs()

    assert [first.state, second.state, other.state] == [DagRunState.SUCCESS] * 3
    assert loops == [loop, loop]
    assert len({first.run_pk, second.run_pk, other.run_pk}) == 3
    assert second.run_id == "second"
    assert [(r.dag_id, r.run_id, r.state) for r in reversed(latest)] == [
        ("embedded", first.run_id, "success"),
        ("embedded", "second", "success"),
        ("simple", other.run_id, "success"),
    ]
    assert all(r.end_date is not None and r.note is None for r in latest)
    # The database outlives the engine: a new engine reads the same runs.
    async with Engine(Settings(home=tmp_path)) as again:
        assert len(await again.store.latest_runs()) == 3
        assert await ti_states(again, second.run_pk) == {"where": "success"}


async def test_duplicate_run_id_is_rejected(engine: Engine) -> None:
    dag = simple_dag()
    await engine.run(dag, run_id="same")
    with pytest.raises(RunExistsError, match="DAG 'simple' already has a run 'same'"):
        await engine.run(dag, run_id="same")
    assert len(await engine.store.find_runs("same")) == 1


async def test_progress_subscribers_each_see_the_run_until_they_unsubscribe(
    engine: Engine,
) -> None:
    """The CLI's progress bar, a test's wait and the service may all watch one run:
    subscribing adds a watcher, it never replaces another's (ADR 0018)."""
    run = await engine.start_run(simple_dag())
    first: list[bool] = []
    second: list[bool] = []
    run.subscribe(lambda r: first.append(r.finished))
    stop_second = run.subscribe(lambda r: second.append(r.finished))
    stop_second()
    third: list[bool] = []
    run.subscribe(lambda r: third.append(r.finished))
    result = await run.done
    assert result.ok
    assert first == third
    assert first[-1] is True
    assert second == []


async def test_progress_hook_sees_every_tick(engine: Engine) -> None:
    seen: list[tuple[int, bool]] = []

    result = await engine.run(
        simple_dag(), on_progress=lambda r: seen.append((r.run_pk, r.finished))
    )

    assert result.ok
    assert seen
    assert {pk for pk, _ in seen} == {result.run_pk}
    assert seen[-1] == (result.run_pk, True)
    assert not any(done for _, done in seen[:-1])


async def test_an_empty_dag_succeeds(engine: Engine) -> None:
    with DAG("empty") as dag:
        pass

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert result.counts == {}
    assert (await engine.store.find_runs(result.run_id))[0].state == "success"


def test_sync_run_wrapper(tmp_path: Path) -> None:
    """``airloop.engine.engine.run`` from plain sync code: its own loop, a RunResult."""
    result = run(simple_dag(), settings=Settings(home=tmp_path), run_id="sync")

    assert isinstance(result, RunResult)
    assert result.state is DagRunState.SUCCESS
    assert result.counts == {"success": 2}
    assert (tmp_path / "airloop.db").is_file()
    assert (tmp_path / "logs" / "simple" / "sync" / "two" / "1.log").is_file()


async def test_sync_run_wrapper_from_a_worker_thread(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        run, simple_dag(), settings=Settings(home=tmp_path), run_id="threaded"
    )
    assert result.ok
    assert result.run_id == "threaded"


async def test_many_tasks_are_written_in_few_ticks(engine: Engine) -> None:
    with DAG("wide") as dag:

        @task
        async def noop() -> None:
            return None

        for _ in range(2000):
            noop()

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    assert result.counts == {"success": 2000}
    assert await engine.store.state_counts(result.run_pk) == {"success": 2000}
    # Each task instance changes state 4 times (scheduled, queued, running, success):
    # 8,000 changes, batched into a handful of ticks, one transaction each.
    assert engine.scheduler.ticks < 200
    assert len(await engine.store.log_paths(result.run_pk)) == 2000


# -- shutdown -----------------------------------------------------------------------------


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_shutdown_interrupts_a_run(tmp_path: Path, thread_gate: threading.Event) -> None:
    never = asyncio.Event()
    started: set[str] = set()

    with DAG("interrupted") as dag:

        @task
        async def first() -> int:
            return 1

        @task
        async def blocked(x: int, ti: object) -> None:
            started.add(str(ti))
            await never.wait()

        @task
        def blocked_in_thread(x: int) -> None:
            started.add("thread")
            thread_gate.wait(timeout=30)

        @task
        def after(a: None, b: None, c: None) -> None:
            raise AssertionError("must not run")

        @task(retries=2, retry_delay=300)
        async def waiting_for_retry() -> None:
            raise ConnectionError("retry much later")

        @task(pool="one")
        async def holds_the_pool() -> None:
            started.add("pool")
            await never.wait()

        @task(pool="one")
        async def waits_for_the_pool() -> None:
            raise AssertionError("must not run")

        x = first()
        after(
            blocked.override(task_id="b1")(x),
            blocked.override(task_id="b2")(x),
            blocked_in_thread(x),
        )
        waiting_for_retry()
        holds_the_pool.override(priority_weight=10)()
        waits_for_the_pool()

    # The default grace (10 s) is far above what the run takes to stop.
    async with Engine(Settings(home=tmp_path, pools={"one": 1})) as engine:
        active = await engine.start_run(dag, run_id="r")
        await wait_until(
            engine,
            active,
            lambda r: (
                len(started) == 4
                and state_of(r, "waiting_for_retry") is TaskState.UP_FOR_RETRY
                and all(
                    state_of(r, t) is TaskState.RUNNING
                    for t in ("b1", "b2", "blocked_in_thread", "holds_the_pool")
                )
            ),
        )
        asked = time.monotonic()
        engine.request_shutdown("test")
        result = await active.done
        stopped_in = time.monotonic() - asked
        rows = await ti_rows(engine, result.run_pk)
        runs = await engine.store.find_runs("r")
        with pytest.raises(RuntimeError, match="stopping"):
            await engine.start_run(simple_dag())

    assert stopped_in < 5  # did not wait for the grace period
    assert result.state is DagRunState.FAILED
    assert result.interrupted == "test"
    states = {t: r.state for (t, _), r in rows.items()}
    assert set(states.values()) <= SETTLED, states
    assert states == {
        "first": "success",
        "b1": "failed",
        "b2": "failed",
        "blocked_in_thread": "failed",
        "after": "upstream_failed",
        "waiting_for_retry": "failed",
        "holds_the_pool": "failed",
        "waits_for_the_pool": "failed",
    }
    for task_id in ("b1", "b2", "blocked_in_thread", "holds_the_pool"):
        assert rows[task_id, -1].error == "interrupted: test", task_id
        assert rows[task_id, -1].end_date is not None
    for task_id in ("waiting_for_retry", "waits_for_the_pool"):
        assert rows[task_id, -1].error == "interrupted: test", task_id
    assert rows["waits_for_the_pool", -1].try_number == 0  # never started
    assert sorted(result.failed) == sorted(
        (t, "interrupted: test")
        for t in (
            "b1",
            "b2",
            "blocked_in_thread",
            "waiting_for_retry",
            "holds_the_pool",
            "waits_for_the_pool",
        )
    )
    assert [(r.state, r.note) for r in runs] == [("failed", "interrupted: test")]


async def test_shutdown_before_the_run_starts_leaves_tasks_none(tmp_path: Path) -> None:
    async with Engine(Settings(home=tmp_path)) as engine:
        active = await engine.start_run(simple_dag(), run_id="r")
        engine.request_shutdown("early")
        result = await active.done
        states = await ti_states(engine, result.run_pk)

    assert result.state is DagRunState.FAILED
    assert result.interrupted == "early"
    assert states == {"one": "none", "two": "none"}  # nothing was started


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_a_coroutine_that_ignores_cancellation_is_failed_after_the_grace(
    tmp_path: Path,
) -> None:
    give_up = asyncio.Event()
    running = asyncio.Event()
    cancels: list[int] = []

    with DAG("stubborn") as dag:

        @task
        async def stubborn() -> None:
            running.set()
            while not give_up.is_set():
                try:
                    await give_up.wait()
                except asyncio.CancelledError:
                    cancels.append(1)  # swallowed: the task refuses to stop

        @task
        async def polite() -> None:
            await asyncio.Event().wait()

        stubborn()
        polite()

    async with Engine(Settings(home=tmp_path, shutdown_grace_seconds=0.5)) as engine:
        active = await engine.start_run(dag, run_id="r")
        await running.wait()
        await wait_until(engine, active, lambda r: state_of(r, "polite") is TaskState.RUNNING)
        asked = time.monotonic()
        engine.request_shutdown("test")
        result = await active.done
        waited = time.monotonic() - asked
        rows = await ti_rows(engine, result.run_pk)
        give_up.set()  # let it end, so the engine closes without waiting

    assert cancels == [1]
    assert 0.5 - 0.01 <= waited < 5
    assert result.state is DagRunState.FAILED
    assert result.interrupted == "test"
    stubborn_row = rows["stubborn", -1]
    assert stubborn_row.state == "failed"
    assert "did not stop within" in stubborn_row.error
    assert "0.5s grace period" in stubborn_row.error
    assert stubborn_row.error.startswith("interrupted: test")
    assert rows["polite", -1].state == "failed"
    assert rows["polite", -1].error == "interrupted: test"


async def test_leaving_the_engine_block_with_an_error_interrupts_runs(tmp_path: Path) -> None:
    never = asyncio.Event()
    running = asyncio.Event()

    with DAG("left_early") as dag:

        @task
        async def forever() -> None:
            running.set()
            await never.wait()

        forever()

    started: list[ActiveRun] = []

    async def caller() -> None:
        async with Engine(Settings(home=tmp_path)) as engine:
            started.append(await engine.start_run(dag, run_id="r"))
            await running.wait()
            raise KeyError("caller bug")

    with pytest.raises(KeyError, match="caller bug"):
        await caller()

    result = started[0].done.result()
    assert result.state is DagRunState.FAILED
    assert result.interrupted == "KeyError in the calling code"
    async with Engine(Settings(home=tmp_path)) as engine:
        states = await ti_states(engine, result.run_pk)
        runs = await engine.store.find_runs("r")
    assert states == {"forever": "failed"}
    assert runs[0].state == "failed"


@pytest.mark.async_executor  # shares the test loop's asyncio objects with tasks
async def test_a_sync_task_queued_for_a_thread_never_runs_after_shutdown(
    tmp_path: Path, thread_gate: threading.Event
) -> None:
    holder_running = threading.Event()
    queued_ran = threading.Event()

    with DAG("queued_sync") as dag:

        @task(priority_weight=10)
        def holder() -> None:
            holder_running.set()
            thread_gate.wait(timeout=30)

        @task
        def queued() -> None:
            queued_ran.set()

        holder()
        queued()

    async with Engine(Settings(home=tmp_path, sync_threads=1)) as engine:
        active = await engine.start_run(dag, run_id="r")
        await asyncio.to_thread(holder_running.wait, 10)
        engine.request_shutdown("test")
        result = await active.done
        states = await ti_states(engine, result.run_pk)
        # Free the only thread, then run a marker job through the same (FIFO, one
        # thread) pool: once it has run, anything queued before it has run too.
        thread_gate.set()
        executors = engine._executors  # private: no public handle on the pool
        assert executors is not None
        pool = executors.get("async")._pool  # type: ignore[attr-defined]
        assert pool is not None
        await asyncio.wrap_future(pool.submit(lambda: None))

    assert states == {"holder": "failed", "queued": "failed"}
    assert not queued_ran.is_set(), "the interrupted task's code ran after the run had failed"


async def test_closing_the_engine_with_an_active_run_leaves_no_running_rows(
    tmp_path: Path,
) -> None:
    never = asyncio.Event()
    running = asyncio.Event()

    with DAG("closed_while_running") as dag:

        @task
        async def forever() -> None:
            running.set()
            await never.wait()

        forever()

    async with Engine(Settings(home=tmp_path, shutdown_grace_seconds=0)) as engine:
        active = await engine.start_run(dag, run_id="r")
        await running.wait()
        # leave the block normally, with the run still going

    assert active.done.done()
    error = active.done.exception()  # retrieved either way, so it is never "unretrieved"
    async with Engine(Settings(home=tmp_path)) as engine:
        runs = await engine.store.find_runs("r")
        states = await ti_states(engine, runs[0].id)
    assert runs[0].state == "failed", runs[0].state
    assert set(states.values()) <= SETTLED, states
    assert error is None
    assert active.done.result().interrupted is not None
