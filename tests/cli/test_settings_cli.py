"""Settings reach every process: a task in a process-pool worker or on a Dask worker
sees the settings the scheduler uses, ``--config`` included (workers do not re-read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import Call, query, run, write

pytestmark = pytest.mark.slow

REPORTS_SETTINGS = """
from airloop import DAG, task
from airloop.runtime import resources


def seen() -> str:
    return f"{resources().settings.aws.region} {resources().settings.xcom_max_bytes}"


with DAG("where_settings") as dag:

    @task(executor="process")
    def in_process() -> str:
        return seen()

    @task(executor="dask")
    def on_dask() -> str:
        return seen()

    @task(executor="dask")
    async def on_dask_async() -> str:
        return seen()

    in_process()
    on_dask()
    on_dask_async()
"""

CONFIG = """
xcom_max_bytes = 54321
process_workers = 1
dask_workers = 1
dask_threads_per_worker = 2

[aws]
region = "region-from-the-config-file"
"""


def test_process_and_dask_workers_get_the_settings_given_with_config(
    tmp_path: Path, home: Path
) -> None:
    dag = write(tmp_path / "dags", "where_settings.py", REPORTS_SETTINGS)
    config = write(tmp_path / "conf", "special.toml", CONFIG)

    result = run(Call(("run", str(dag), "--config", str(config)), home), timeout=120)

    assert result.code == 0, result.transcript
    seen = {
        row["task_id"]: json.loads(row["value"])
        for row in query(result.db, "SELECT task_id, value FROM xcom")
    }
    expected = "region-from-the-config-file 54321"
    assert seen == {"in_process": expected, "on_dask": expected, "on_dask_async": expected}
