"""A worker process that dies fails its task instance with a reason; the retry policy
decides what happens next and later work runs normally (process and Dask only: on the
in-process executors the dying task would take the test process with it)."""

from __future__ import annotations

import json

import pytest

from airloop import DagRunState
from airloop.authoring.dag import DAG
from airloop.engine.engine import Engine

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=["process", "dask"])
def executor_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_dead_worker_fails_the_try_and_the_retry_succeeds(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    result = await engine.run(dags["dying"])
    assert result.state is DagRunState.SUCCESS, result.failed
    (row,) = await engine.store.task_instances(result.run_pk)
    assert row.try_number == 2
    (value,) = await engine.store.xcom_values(result.run_pk)
    assert json.loads(value.value) == 2
    # The pool (or cluster) recovered: a later run on the same executor works.
    again = await engine.run(dags["flow"], params={"n": 2})
    assert again.state is DagRunState.SUCCESS, again.failed


async def test_the_reason_is_recorded_in_the_first_try(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    dag = dags["dying"]
    run = await engine.start_run(dag)
    seen: list[str] = []

    (key,) = run.keys(next(iter(dag.task_dict)))

    def watch(r: object) -> None:
        note = run.note_of(key)
        if note and note not in seen:
            seen.append(note)

    run.subscribe(watch)
    result = await run.done
    assert result.state is DagRunState.SUCCESS
    assert seen, "the failed first try recorded no reason"
    assert "died" in seen[0]
