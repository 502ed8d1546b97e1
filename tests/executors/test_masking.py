"""Secret masking on all four executors (ADR 0032): a secret registered by a task (or
by the scheduler's process) never reaches the task's log file, its stored rendered
fields or its stored error, wherever the task ran."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from airloop import DagRunState
from airloop.authoring.dag import DAG
from airloop.core import masking
from airloop.dagbag.loader import load_dag_file
from airloop.engine.engine import Engine

from .conftest import executor_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAGS = Path(__file__).parent / "dags" / "masking.py"
SECRET = "s3cr3t-value"
PARENT_SECRET = "parent-only-s3cr3t"
TASKS = ("sync_leak", "async_leak", "body_leak", "async_body_leak")


@pytest.fixture(scope="module")
def dags() -> dict[str, DAG]:
    return load_dag_file(DAGS).dags


@pytest.fixture(scope="module", autouse=True)
def clean_masker() -> Iterator[None]:
    """This process's masker starts and ends empty (it is process-wide)."""
    masking.MASKER.reset()
    yield
    masking.MASKER.reset()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(
    executor_name: str, tmp_path_factory: pytest.TempPathFactory, clean_masker: None
) -> AsyncIterator[Engine]:
    """The suite's engine, with one more sensitive name (workers get it shipped)."""
    home = tmp_path_factory.mktemp(f"home-{executor_name}")
    settings = executor_settings(executor_name, home).model_copy(
        update={"sensitive_var_conn_names": "pin_code"}
    )
    async with Engine(settings) as engine:
        yield engine


async def log_text(path: str, until: str) -> str:
    """A task log's text once it contains ``until`` (the writer thread appends)."""
    async with asyncio.timeout(20):
        # A file another thread appends to: no event to wait on, so read it again.
        while until not in (text := await asyncio.to_thread(Path(path).read_text)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return text


async def test_secrets_are_masked_in_logs_rendered_fields_and_errors(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    masking.mask_secret(PARENT_SECRET)  # the scheduler's process: shipped to workers
    result = await engine.run(dags["masking"])
    assert result.state is DagRunState.FAILED
    table = {r.task_id: r for r in await engine.store.task_instances(result.run_pk)}
    assert table["sync_leak"].error == "ValueError: failed with *** and ***"
    assert table["async_leak"].error == "ValueError: failed with *** and ***"
    assert table["body_leak"].error == "RuntimeError: failed with ***"
    assert table["async_body_leak"].error == "RuntimeError: failed with ***"
    assert all(SECRET not in (error or "") for _, error in result.failed)

    paths = {r.task_id: r.path for r in await engine.store.log_paths(result.run_pk)}
    for task_id in TASKS:
        text = await log_text(paths[task_id], "failed: ")
        assert SECRET not in text, (task_id, text)
        assert PARENT_SECRET not in text, (task_id, text)
        assert "failed with ***" in text  # the traceback's last line, and the error line
    for task_id in ("body_leak", "async_body_leak"):
        assert "printed: ***" in await log_text(paths[task_id], "failed: ")
    for task_id in ("sync_leak", "async_leak"):
        text = await log_text(paths[task_id], "failed: ")
        assert "printed: run --password *** and ***" in text
        assert "logged: ***" in text
    assert "as visible-login" in await log_text(paths["async_body_leak"], "failed: ")

    for task_id in ("sync_leak", "async_leak"):
        stored = await engine.store.rendered_fields(result.run_pk, task_id, -1)
        assert stored is not None
        assert json.loads(stored.fields) == {
            "command": "run --password ***",
            "env": {"api_key": "***", "plain": "visible-value"},
            "pin_code": "***",
        }

    # What the tasks registered where they ran is known here too from now on.
    assert SECRET in masking.secrets()
    assert masking.redact_text(f"later {SECRET}") == "later ***"
