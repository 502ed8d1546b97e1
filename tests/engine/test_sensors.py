"""Sensors: async and sync pokes, intervals, timeouts, soft_fail, XCom, backoff."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from airloop import (
    DAG,
    BaseSensor,
    Context,
    DagRunState,
    PokeReturnValue,
    task,
)
from airloop.engine.engine import Engine
from airloop.runtime import current_task_label

from .support import ti_rows, xcom_map

EPS = 0.005


class AsyncCountingSensor(BaseSensor):
    """Done on poke number ``done_on``; records when each poke happened."""

    def __init__(self, *, pokes: list[float], done_on: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pokes = pokes
        self.done_on = done_on

    async def poke(self, context: Context) -> bool:
        self.pokes.append(time.monotonic())
        return self.done_on is not None and len(self.pokes) >= self.done_on


class SyncCountingSensor(BaseSensor):
    def __init__(
        self,
        *,
        pokes: list[tuple[float, threading.Thread, str | None]],
        done_on: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pokes = pokes
        self.done_on = done_on

    def poke(self, context: Context) -> bool:
        self.pokes.append((time.monotonic(), threading.current_thread(), current_task_label.get()))
        return len(self.pokes) >= self.done_on


class ValueSensor(BaseSensor):
    def __init__(self, *, calls: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = calls

    async def poke(self, context: Context) -> PokeReturnValue:
        self.calls.append(1)
        if len(self.calls) < 2:
            return PokeReturnValue(False, {"ignored": True})
        return PokeReturnValue(True, {"path": "/data/ready", "pokes": len(self.calls)})


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_async_poke_waits_poke_interval_between_pokes(engine: Engine) -> None:
    pokes: list[float] = []
    with DAG("sensor_async") as dag:
        sensor = AsyncCountingSensor(
            task_id="wait", pokes=pokes, done_on=3, poke_interval=0.05, timeout=30
        )

        @task
        def after() -> str:
            return "went on"

        sensor >> after()

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert len(pokes) == 3
    assert all(g >= 0.05 - EPS for g in gaps(pokes)), gaps(pokes)
    rows = await ti_rows(engine, result.run_pk)
    assert (rows["wait", -1].state, rows["wait", -1].try_number) == ("success", 1)
    assert rows["after", -1].state == "success"
    assert ("wait", -1) not in await xcom_map(engine, result.run_pk)  # a bool stores nothing


async def test_sync_poke_runs_off_the_loop_thread(engine: Engine) -> None:
    loop_thread = threading.current_thread()
    pokes: list[tuple[float, threading.Thread, str | None]] = []
    with DAG("sensor_sync") as dag:
        SyncCountingSensor(task_id="wait", pokes=pokes, done_on=3, poke_interval=0.02)

    result = await engine.run(dag, run_id="r1")

    assert result.state is DagRunState.SUCCESS, result.failed
    assert len(pokes) == 3
    assert all(thread is not loop_thread for _, thread, _ in pokes)
    assert all(thread.name.startswith("airloop-sync") for _, thread, _ in pokes)
    assert {label for _, _, label in pokes} == {"sensor_sync/r1/wait try 1"}
    assert all(g >= 0.02 - EPS for g in gaps([t for t, _, _ in pokes]))


async def test_sensor_timeout_fails_without_retry(engine: Engine) -> None:
    pokes: list[float] = []
    with DAG("sensor_timeout") as dag:
        sensor = AsyncCountingSensor(
            task_id="wait",
            pokes=pokes,
            done_on=None,
            poke_interval=0.03,
            timeout=0.15,
            retries=3,
            retry_delay=0.01,
        )

        @task
        def after() -> None:
            raise AssertionError("must not run")

        sensor >> after()

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    rows = await ti_rows(engine, result.run_pk)
    row = rows["wait", -1]
    assert (row.state, row.try_number, row.max_tries) == ("failed", 1, 4)
    assert row.error.startswith("SensorTimeout: sensor 'wait' timed out after")
    assert "timeout 0.15s" in row.error
    assert pokes[-1] - pokes[0] >= 0.15 - 0.03 - EPS  # it kept poking until the deadline
    assert len(pokes) >= 2
    assert rows["after", -1].state == "upstream_failed"


async def test_soft_fail_skips_the_sensor_and_its_downstream(engine: Engine) -> None:
    pokes: list[float] = []
    with DAG("sensor_soft") as dag:
        sensor = AsyncCountingSensor(
            task_id="wait",
            pokes=pokes,
            done_on=None,
            poke_interval=0.02,
            timeout=0.06,
            soft_fail=True,
        )

        @task
        def after() -> None:
            raise AssertionError("must not run")

        sensor >> after()

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS
    rows = await ti_rows(engine, result.run_pk)
    assert rows["wait", -1].state == "skipped"
    assert "timed out" in rows["wait", -1].error
    assert rows["after", -1].state == "skipped"


async def test_poke_return_value_passes_an_xcom(engine: Engine) -> None:
    calls: list[int] = []
    received: list[Any] = []
    with DAG("sensor_value") as dag:
        sensor = ValueSensor(task_id="wait", calls=calls, poke_interval=0.01)

        @task
        def use(found: dict[str, Any]) -> None:
            received.append(found)

        use(sensor.output)

    result = await engine.run(dag)

    assert result.state is DagRunState.SUCCESS, result.failed
    assert received == [{"path": "/data/ready", "pokes": 2}]
    stored = await xcom_map(engine, result.run_pk)
    assert stored["wait", -1] == '{"path":"/data/ready","pokes":2}'


async def test_exponential_backoff_grows_and_max_wait_caps_it(engine: Engine) -> None:
    pokes: list[float] = []
    with DAG("sensor_backoff") as dag:
        AsyncCountingSensor(
            task_id="wait",
            pokes=pokes,
            done_on=10,
            poke_interval=0.01,
            exponential_backoff=True,
            max_wait=0.04,
            timeout=30,
        )

    started = time.monotonic()
    result = await engine.run(dag)
    elapsed = time.monotonic() - started

    assert result.state is DagRunState.SUCCESS
    intervals = gaps(pokes)
    assert len(intervals) == 9
    # Interval n is 0.01 * 2**(n-1), jittered into [half, full], then capped at 0.04:
    # the third wait is at least 0.02 (a fixed interval would stay at 0.01).
    assert intervals[2] >= 0.02 - EPS, intervals
    assert all(i >= 0.005 - EPS for i in intervals), intervals
    # Uncapped, the nine waits would take at least 2.5 s; capped, at most ~0.3 s.
    assert elapsed < 2.0, intervals
