"""On PostgreSQL a run triggered from the CLI reaches a running scheduler through
LISTEN/NOTIFY: it starts at once, not at the next poll (here 60 s away)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from airloop.store.listener import APPLICATION_NAME

DAG_FILE = """
from airloop import DAG, task

with DAG("woken") as dag:
    @task
    def only() -> int:
        return 1
    only()
"""


async def until(check: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    """Wait for another process to have done something (it writes the database)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - another process writes it
            await asyncio.sleep(0.1)


async def scalar(db: AsyncEngine, query: str) -> object:
    async with db.connect() as conn:
        return (await conn.execute(text(query))).scalar()


async def test_a_cli_trigger_starts_without_waiting_for_the_poll(
    tmp_path: Path, postgres_url: str
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "woken.py").write_text(textwrap.dedent(DAG_FILE))
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home"),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_DATABASE_URL": postgres_url,
        # Far longer than the test waits: only the notification can wake it.
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "60",
        "PYTHONDONTWRITEBYTECODE": "1",  # nothing written in the watched folder
    }
    name = postgres_url.rsplit("/", 1)[1]
    db = create_async_engine(postgres_url)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log_file:
        service = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "airloop",
            "scheduler",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        try:

            async def ready() -> bool:
                assert service.returncode is None, log_path.read_text()
                if not await scalar(db, "SELECT to_regclass('public.dag') IS NOT NULL"):
                    return False
                # The DAG recorded (its file parsed) and the listener listening.
                recorded = await scalar(db, "SELECT count(*) FROM dag WHERE dag_id = 'woken'")
                listening = await scalar(
                    db,
                    "SELECT count(*) FROM pg_stat_activity "
                    f"WHERE application_name = '{APPLICATION_NAME}' AND datname = '{name}'",
                )
                return recorded == 1 and listening == 1

            await until(ready)
            # The previous passes are over: the service waits (60 s) for a reason to look.
            await asyncio.sleep(0.5)
            trigger = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "airloop",
                "dags",
                "trigger",
                "woken",
                "--run-id",
                "now",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, stderr = await trigger.communicate()
            assert trigger.returncode == 0, stderr.decode()

            async def started() -> bool:
                return await scalar(db, "SELECT start_date FROM dag_run") is not None

            await until(started, within=30)
            # Both stamps as the database stores them, compared in one expression.
            waited = await scalar(
                db, "SELECT EXTRACT(EPOCH FROM start_date - created_at) FROM dag_run"
            )
            assert float(str(waited)) < 1.0, waited
        finally:
            if service.returncode is None:
                service.send_signal(signal.SIGTERM)
            await asyncio.wait_for(service.wait(), 60)
            await db.dispose()
    assert service.returncode == 0, log_path.read_text()
