"""One engine per executor (as tests/executors): the Bash operator tests run on all four."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from airloop.authoring.dag import DAG
from airloop.dagbag.loader import load_dag_file
from airloop.engine.engine import Engine
from airloop.settings import Settings

DAGS = Path(__file__).parent / "dags" / "bash_dags.py"
EXECUTORS = ["async", "thread", "process", "dask"]


def executor_settings(name: str, home: Path) -> Settings:
    """As tests/executors/conftest.py: every task on the executor ``name``."""
    return Settings(
        home=home,
        use_async=name == "async",
        sync_executor="thread" if name == "async" else name,
        process_workers=2,
        dask_workers=1,
        dask_threads_per_worker=8,
        shutdown_grace_seconds=5,
    )


@pytest.fixture(scope="module", params=EXECUTORS)
def executor_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(
    executor_name: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Engine]:
    home = tmp_path_factory.mktemp(f"home-{executor_name}")
    async with Engine(executor_settings(executor_name, home)) as engine:
        yield engine


@pytest.fixture(scope="module")
def dags() -> dict[str, DAG]:
    return load_dag_file(DAGS).dags
