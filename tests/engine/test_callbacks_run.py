"""Callbacks in a real engine: DAG callbacks see the run's final state written, and a
shutdown waits a bounded time for running callbacks, then cancels them (ADR 0024)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.settings import Settings


async def test_dag_callback_runs_after_the_final_state_is_written(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    engine_box: list[Engine] = []

    async def on_failure(context: Any) -> None:
        runs = await engine_box[0].store.find_runs(context["run_id"], "written")
        seen.append((context["reason"], runs[0].state))

    with DAG("written", on_failure_callback=on_failure) as dag:

        @task
        def boom() -> None:
            raise ValueError("boom")

        boom()

    async with Engine(Settings(home=tmp_path)) as engine:
        engine_box.append(engine)
        result = await engine.run(dag)
        assert result.state is DagRunState.FAILED
    # The engine's close waited for the callback (it ends well within the grace).
    assert seen == [("task_failure", "failed")]


async def test_shutdown_cancels_a_dag_callback_that_outlives_the_grace(tmp_path: Path) -> None:
    events: list[str] = []

    async def hangs(context: Any) -> None:
        events.append("started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    with DAG("hanging", on_success_callback=hangs) as dag:

        @task
        def ok() -> int:
            return 1

        ok()

    settings = Settings(home=tmp_path, callback_timeout=3600, shutdown_grace_seconds=0.2)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS
    assert events == ["started", "cancelled"]


@pytest.mark.async_executor  # the callback's coroutine is cancelled on this loop
async def test_shutdown_cancels_a_task_callback_that_outlives_the_grace(tmp_path: Path) -> None:
    events: list[str] = []

    async def hangs(context: Any) -> None:
        events.append(f"started {context['ti'].task_id}")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    with DAG("hanging_task_callback") as dag:

        @task(on_success_callback=hangs)
        async def ok() -> int:
            return 1

        ok()

    settings = Settings(home=tmp_path, callback_timeout=3600, shutdown_grace_seconds=0.2)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        # The run did not wait for its task's callback.
        assert result.state is DagRunState.SUCCESS
    assert events == ["started ok", "cancelled"]
