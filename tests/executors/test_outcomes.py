"""The runner classifies how a try ended as a typed Outcome (issue 10 step 2, ADR 0017).

The async executor runs each task instance of a small DAG directly (no scheduler), and
the report it sends is checked field by field: decisions downstream test ``outcome``
and ``retryable``, never the reason's text.
"""

from __future__ import annotations

import asyncio
import io
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from airloop.authoring.context import DagRunInfo
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.xcom_arg import ValuesLookup
from airloop.core.outcomes import Outcome
from airloop.exceptions import FailTask, SkipTask
from airloop.executors.async_executor import AsyncExecutor
from airloop.executors.base import WorkItem
from airloop.executors.events import OutcomeChannel, TaskFinished, TaskStarted
from airloop.executors.task_logs import StreamSink


def _dag() -> DAG:
    with DAG("outcomes") as dag:

        @task
        async def returns() -> int:
            return 1

        @task
        async def skips() -> None:
            raise SkipTask("not today")

        @task
        async def raises() -> None:
            raise ValueError("interrupted: looks like a cancellation, is not one")

        @task
        async def refuses() -> None:
            raise FailTask("no")

        @task(execution_timeout=0.05)
        async def hangs() -> None:
            await asyncio.Event().wait()

        @task
        async def waits() -> None:
            await asyncio.Event().wait()

        for fn in (returns, skips, raises, refuses, hangs, waits):
            fn()
    return dag


def _item(dag: DAG, task_id: str) -> WorkItem:
    node = dag.get_task(task_id)
    now = datetime.now(UTC)
    return WorkItem.build(
        dag=dag,
        operator=node.materialize(-1, ValuesLookup({})),
        run=DagRunInfo(dag.dag_id, "r", now, "test", {}),
        run_pk=0,
        map_index=-1,
        try_number=1,
        log_path="-",
        xcom_max_bytes=1000,
        executor="async",
        bound=None,
    )


async def _finish(task_id: str, *, cancel: bool = False) -> TaskFinished:
    channel = OutcomeChannel()
    sink = StreamSink(io.StringIO())
    executor = AsyncExecutor(sync_threads=1, hostname=socket.gethostname(), sink_for=lambda _: sink)
    await executor.start(channel)
    item = _item(_dag(), task_id)
    try:
        executor.submit(item)
        while True:
            for event in await channel.take(None):
                if isinstance(event, TaskStarted) and cancel:
                    executor.cancel(item.ref, "test stop")
                if isinstance(event, TaskFinished):
                    return event
    finally:
        await executor.shutdown(asyncio.get_running_loop().time() + 5)


@pytest.mark.parametrize(
    ("task_id", "cancel", "outcome", "retryable", "reason"),
    [
        ("returns", False, Outcome.SUCCESS, False, None),
        ("skips", False, Outcome.SKIPPED, False, "not today"),
        (
            "raises",
            False,
            Outcome.FAILED,
            True,
            "ValueError: interrupted: looks like a cancellation, is not one",
        ),
        ("refuses", False, Outcome.FAILED, False, "FailTask: no"),
        (
            "hangs",
            False,
            Outcome.TIMED_OUT,
            True,
            "TaskTimeout: execution_timeout of 0.05s exceeded",
        ),
        ("waits", True, Outcome.INTERRUPTED, False, "interrupted: test stop"),
    ],
)
async def test_each_end_of_a_try_is_reported_as_a_typed_outcome(
    task_id: str, cancel: bool, outcome: Outcome, retryable: bool, reason: Any
) -> None:
    finished = await _finish(task_id, cancel=cancel)
    assert (finished.outcome, finished.retryable, finished.reason) == (outcome, retryable, reason)
    assert finished.stimulus_id.startswith("finished-")
