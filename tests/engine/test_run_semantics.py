"""Run semantics across runs, in real engines on a real SQLite file: depends_on_past
(previous run in the same engine, or from an earlier session), ignore_first_depends_on_past,
wait_for_downstream, max_active_tis_per_dag / max_active_tis_per_dagrun (overlap counts
of recorded start/end times) and the prev_*_success context keys."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.core.specs import TIKey
from airloop.engine.engine import Engine
from airloop.settings import Settings
from airloop.store.service import ServiceStore

from .support import ti_rows, wait_until, xcom_map

D1 = datetime(2026, 11, 1, tzinfo=UTC)
D2 = datetime(2026, 11, 2, tzinfo=UTC)


def _interval(day: datetime) -> tuple[datetime, datetime]:
    return day, day + timedelta(days=1)


def _waiting(key: TIKey, words: str) -> Any:
    return lambda run: words in (run.note_of(key) or "")


def max_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one moment (an end at the same instant as a start closes first)."""
    points = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1])
    )
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def gated_dag(dag_id: str, release: threading.Event, **task_args: Any) -> DAG:
    """``t`` (with ``task_args``) blocks in the run of D1 until ``release`` is set."""
    with DAG(dag_id) as dag:

        @task(**task_args)
        def t(logical_date: datetime) -> str:
            if logical_date == D1:
                release.wait(30)
            return logical_date.isoformat()

        t()
    return dag


async def test_depends_on_past_waits_for_the_previous_run_in_the_same_engine(
    tmp_path: Path, thread_gate: threading.Event
) -> None:
    # No re-check within the test: the previous run finishing wakes the held one.
    async with Engine(Settings(home=tmp_path, depends_on_past_recheck_interval=3600)) as engine:
        await _held_until_the_previous_run_succeeds(engine, thread_gate)


async def _held_until_the_previous_run_succeeds(
    engine: Engine, thread_gate: threading.Event
) -> None:
    dag = gated_dag("dop", thread_gate, depends_on_past=True)
    first = await engine.start_run(dag, run_id="r1", logical_date=D1)
    await wait_until(engine, first, lambda r: r.state_of(TIKey("t")) is not None and r.active == 1)
    second = await engine.start_run(dag, run_id="r2", logical_date=D2)
    await wait_until(engine, second, _waiting(TIKey("t"), "depends_on_past"))
    assert str(second.state_of(TIKey("t"))) == "none"
    assert "'r1'" in (second.note_of(TIKey("t")) or "")
    stored = (await ti_rows(engine, second.run_pk))[("t", -1)]
    assert stored.state == "none"
    assert "waiting: depends_on_past" in (stored.error or "")
    thread_gate.set()  # the previous run's instance succeeds: the held one starts at once
    r1, r2 = await first.done, await second.done
    assert (r1.state, r2.state) == (DagRunState.SUCCESS, DagRunState.SUCCESS)
    before = (await ti_rows(engine, first.run_pk))[("t", -1)]
    after = (await ti_rows(engine, second.run_pk))[("t", -1)]
    assert after.start_date >= before.end_date
    assert after.error is None  # the waiting note is gone once it ran


async def test_depends_on_past_of_a_mapped_task_is_per_map_index(
    engine: Engine, thread_gate: threading.Event
) -> None:
    with DAG("dop_mapped") as dag:

        @task(depends_on_past=True)
        def m(i: int, logical_date: datetime) -> int:
            if logical_date == D1 and i == 1:
                thread_gate.wait(30)
            return i

        m.expand(i=[0, 1])
    first = await engine.start_run(dag, run_id="r1", logical_date=D1)
    await wait_until(engine, first, lambda r: str(r.state_of(TIKey("m", 0))) == "success")
    second = await engine.start_run(dag, run_id="r2", logical_date=D2)
    # m[0] of r1 succeeded: r2's m[0] runs; r2's m[1] waits for r1's m[1].
    await wait_until(
        engine,
        second,
        lambda r: (
            str(r.state_of(TIKey("m", 0))) == "success"
            and "m[1]" in (r.note_of(TIKey("m", 1)) or "")
        ),
    )
    assert str(second.state_of(TIKey("m", 1))) == "none"
    thread_gate.set()
    assert (await first.done).ok
    assert (await second.done).ok


ATTEMPTS: list[str] = []


def flaky_dag() -> DAG:
    """``t`` fails the first time it runs in the process, then succeeds."""
    with DAG("dop_sessions") as dag:

        @task(depends_on_past=True)
        def t(run_id: str) -> str:
            ATTEMPTS.append(run_id)
            if ATTEMPTS.count("r1") == 1 and run_id == "r1":
                raise RuntimeError("first try of r1 fails")
            return run_id

        t()
    return dag


async def test_depends_on_past_on_a_previous_run_of_an_earlier_session(tmp_path: Path) -> None:
    ATTEMPTS.clear()
    settings = Settings(home=tmp_path, depends_on_past_recheck_interval=0.2)
    dag = flaky_dag()
    async with Engine(settings) as earlier:
        first = await (await earlier.start_run(dag, run_id="r1", logical_date=D1)).done
    assert first.state is DagRunState.FAILED
    async with Engine(settings) as engine:
        second = await engine.start_run(dag, run_id="r2", logical_date=D2)
        await wait_until(engine, second, _waiting(TIKey("t"), "is failed"))
        # Another "process" (a second engine on the same database) clears and re-runs
        # r1: the held instance notices within the re-check interval.
        async with Engine(settings) as other:
            await ServiceStore(other.store).clear(first.run_pk, ["t"], failed_only=True)
            await ServiceStore(other.store).set_run_state(first.run_pk, DagRunState.RUNNING)
            rerun = await (await other.start_run(dag, run_id="r1", resume=True)).done
        assert rerun.state is DagRunState.SUCCESS
        result = await second.done
    assert result.state is DagRunState.SUCCESS
    assert ATTEMPTS == ["r1", "r1", "r2"]


async def test_depends_on_past_met_by_a_previous_run_of_an_earlier_session(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    released = threading.Event()
    released.set()
    dag = gated_dag("dop_done", released, depends_on_past=True)
    async with Engine(settings) as earlier:
        assert (await (await earlier.start_run(dag, logical_date=D1)).done).ok
    async with Engine(settings) as engine:
        assert (await (await engine.start_run(dag, logical_date=D2)).done).ok


@pytest.mark.parametrize("ignore_first", [True, False])
async def test_ignore_first_depends_on_past_for_a_task_added_later(
    engine: Engine, ignore_first: bool
) -> None:
    with DAG("grows") as old:

        @task
        def a() -> int:
            return 1

        a()
    assert (await (await engine.start_run(old, run_id="r1", logical_date=D1)).done).ok
    with DAG("grows") as new:

        @task
        def a() -> int:
            return 1

        @task(depends_on_past=True, ignore_first_depends_on_past=ignore_first)
        def added() -> int:
            return 2

        a()
        added()
    run = await engine.start_run(new, run_id="r2", logical_date=D2)
    if ignore_first:
        assert (await run.done).ok  # its first instance ever: the gate does not apply
    else:
        await wait_until(engine, run, _waiting(TIKey("added"), "has not run yet"))
        assert str(run.state_of(TIKey("added"))) == "none"
        assert str(run.state_of(TIKey("a"))) == "success"


async def test_wait_for_downstream_waits_for_the_previous_runs_downstream_tasks(
    engine: Engine, thread_gate: threading.Event
) -> None:
    with DAG("wfd") as dag:

        @task(wait_for_downstream=True)
        def a() -> int:
            return 1

        @task
        def b(value: int, logical_date: datetime) -> int:
            if logical_date == D1:
                thread_gate.wait(30)
            return value

        b(a())
    assert dag.task_dict["a"].settings.depends_on_past  # implied, as in Airflow
    first = await engine.start_run(dag, run_id="r1", logical_date=D1)
    await wait_until(engine, first, lambda r: str(r.state_of(TIKey("a"))) == "success")
    second = await engine.start_run(dag, run_id="r2", logical_date=D2)
    await wait_until(engine, second, _waiting(TIKey("a"), "wait_for_downstream"))
    assert "b" in (second.note_of(TIKey("a")) or "")
    thread_gate.set()
    assert (await first.done).ok
    assert (await second.done).ok
    b_before = (await ti_rows(engine, first.run_pk))[("b", -1)]
    a_after = (await ti_rows(engine, second.run_pk))[("a", -1)]
    assert a_after.start_date >= b_before.end_date


async def test_max_active_tis_per_dag_holds_across_two_concurrent_runs(engine: Engine) -> None:
    with DAG("per_dag") as dag:

        @task(max_active_tis_per_dag=1)
        def t() -> None:
            time.sleep(0.2)

        @task
        def free() -> None:
            time.sleep(0.2)

        t()
        free()
    runs = [
        await engine.start_run(dag, run_id=f"r{i}", logical_date=D1 + timedelta(i))
        for i in range(3)
    ]
    spans: list[tuple[datetime, datetime]] = []
    free_spans: list[tuple[datetime, datetime]] = []
    for run in runs:
        assert (await run.done).ok
        rows = await ti_rows(engine, run.run_pk)
        spans.append((rows[("t", -1)].start_date, rows[("t", -1)].end_date))
        free_spans.append((rows[("free", -1)].start_date, rows[("free", -1)].end_date))
    assert max_overlap(spans) == 1
    assert max_overlap(free_spans) > 1  # the runs did run side by side


async def test_max_active_tis_per_dagrun_caps_a_mapped_task(engine: Engine) -> None:
    with DAG("per_run") as dag:

        @task(max_active_tis_per_dagrun=2)
        def work(i: int) -> int:
            time.sleep(0.2)
            return i

        work.expand(i=list(range(6)))
    run = await engine.start_run(dag)
    assert (await run.done).ok
    rows = await ti_rows(engine, run.run_pk)
    spans = [(r.start_date, r.end_date) for (t, i), r in rows.items() if t == "work"]
    assert len(spans) == 6
    assert max_overlap(spans) == 2


async def test_prev_success_keys_come_from_the_latest_successful_earlier_run(
    engine: Engine,
) -> None:
    with DAG("prev", params={"fail": False}) as dag:

        @task
        def show(
            prev_data_interval_start_success: datetime | None,
            prev_data_interval_end_success: datetime | None,
            prev_start_date_success: datetime | None,
            params: dict[str, Any],
        ) -> list[str | None]:
            if params["fail"]:
                raise RuntimeError("this run fails")
            return [
                d.isoformat() if d else None
                for d in (
                    prev_data_interval_start_success,
                    prev_data_interval_end_success,
                    prev_start_date_success,
                )
            ]

        show()
    first = await engine.start_run(
        dag, {"fail": False}, logical_date=D1, data_interval=_interval(D1)
    )
    assert (await first.done).ok
    failed = await engine.start_run(
        dag, {"fail": True}, logical_date=D2, data_interval=_interval(D2)
    )
    assert not (await failed.done).ok
    d3 = D2 + timedelta(days=1)
    third = await engine.start_run(
        dag, {"fail": False}, logical_date=d3, data_interval=_interval(d3)
    )
    assert (await third.done).ok
    (first_row,) = await engine.store.find_runs(first.info.run_id, "prev")
    assert json.loads((await xcom_map(engine, first.run_pk))[("show", -1)]) == [None, None, None]
    assert json.loads((await xcom_map(engine, third.run_pk))[("show", -1)]) == [
        D1.isoformat(),
        (D1 + timedelta(days=1)).isoformat(),
        first_row.start_date.isoformat(),
    ]
