"""One engine per executor (as tests/executors): the Bash operator tests run on all four.

The executors suite's ``executor_name`` / ``engine`` fixtures (and so its settings) are
reused as they are; only the DAG file differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from airloop.authoring.dag import DAG
from airloop.dagbag.loader import load_dag_file
from executors.conftest import engine, executor_name

DAGS = Path(__file__).parent / "dags" / "bash_dags.py"

__all__ = ["engine", "executor_name"]  # fixtures, re-exported for pytest


@pytest.fixture(scope="module")
def dags() -> dict[str, DAG]:
    return load_dag_file(DAGS).dags
