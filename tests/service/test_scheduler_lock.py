"""One scheduler per PostgreSQL or MySQL/MariaDB database: a second one refuses to
start, and one that loses its lock starts nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.scheduler_lock import advisory_key, named_lock
from airloop.store.service import ServiceStore

STEPS = """
import asyncio, pathlib
from airloop import DAG, task

HERE = pathlib.Path(__file__).parent

async def wait_for(name: str) -> None:
    while not (HERE / name).exists():
        await asyncio.sleep(0.05)

with DAG("steps") as dag:
    @task
    async def first() -> None:
        await wait_for("go1")

    @task
    async def second(x: None) -> None:
        await wait_for("go2")

    @task
    async def third(x: None) -> None: ...

    third(second(first()))
"""


@contextlib.asynccontextmanager
async def service_on(
    tmp_path: Path, url: str
) -> AsyncIterator[tuple[SchedulerService, asyncio.Task[None]]]:
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "steps.py").write_text(textwrap.dedent(STEPS))
    # The one-scheduler lock (ADR 0013): what scheduler_ha = "off" keeps on a server
    # (several schedulers with leases: tests/ha).
    settings = Settings(
        home=tmp_path / "home",
        dags_folder=dags,
        database_url=url,
        scheduler_poll_interval=0.2,
        scheduler_ha="off",
    )
    service = SchedulerService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(30):
            await service.ready.wait()
        yield service, task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.wait([task]), 30)


async def _second_scheduler(tmp_path: Path, url: str, **env: str) -> tuple[int | None, list[str]]:
    """Start ``airloop scheduler`` beside the running service; its exit code and the
    lines of its stderr (INFO lines aside)."""
    full = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home2"),
        "AIRLOOP_DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRLOOP_DATABASE_URL": url,
        **env,
    }
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airloop", "scheduler", env=full,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            _, stderr = await second.communicate()
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    lines = [x for x in stderr.decode().strip().splitlines() if not x.startswith("INFO ")]
    return second.returncode, lines


async def test_a_second_scheduler_on_the_same_server_database_refuses_to_start(
    tmp_path: Path, server_database_url: str
) -> None:
    async with service_on(tmp_path, server_database_url):
        code, lines = await _second_scheduler(
            tmp_path, server_database_url, AIRLOOP_SCHEDULER_HA="off"
        )
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: another scheduler is running on database")


async def test_a_scheduler_with_leases_refuses_to_start_beside_one_under_the_lock(
    tmp_path: Path, server_database_url: str
) -> None:
    """Modes are not mixed on one database: a scheduler with leases (the default on a
    server) refuses to run beside one that holds the one-scheduler lock."""
    async with service_on(tmp_path, server_database_url):
        code, lines = await _second_scheduler(tmp_path, server_database_url)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: a scheduler with scheduler_ha = 'off' is running")


async def _admin(url: str) -> tuple[Any, AsyncConnection]:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    return engine, await engine.connect()


async def _holder(conn: AsyncConnection, backend: str, database: str) -> int | None:
    if backend == "postgresql":
        query = (
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return (await conn.execute(text(query))).scalar()
    return (
        await conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": named_lock(database)})
    ).scalar()


async def _kill(conn: AsyncConnection, backend: str, session: int) -> None:
    if backend == "postgresql":
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": session})
    else:
        await conn.execute(text(f"KILL {int(session)}"))


async def _take(conn: AsyncConnection, backend: str, database: str) -> bool:
    if backend == "postgresql":
        query, params = "SELECT pg_try_advisory_lock(:k)", {"k": advisory_key()}
    else:
        query, params = "SELECT GET_LOCK(:n, 0)", {"n": named_lock(database)}
    return bool((await conn.execute(text(query), params)).scalar())


async def _ti_states(store: Store, run_pk: int) -> dict[str, str]:
    return {t.task_id: t.state for t in await store.task_instances(run_pk)}


async def test_a_scheduler_that_loses_its_lock_takes_it_back_or_starts_nothing_more(
    tmp_path: Path, server_database_url: str
) -> None:
    url = make_url(server_database_url)
    backend, database = url.get_backend_name(), url.database or ""
    dags = tmp_path / "dags"
    engine, admin = await _admin(server_database_url)
    try:
        async with service_on(tmp_path, server_database_url) as (service, task):
            store = await Store.open(server_database_url)
            try:
                await ServiceStore(store).queue_run("steps", "r", {}, datetime.now(UTC))

                async def step(expected: dict[str, str]) -> int:
                    async with asyncio.timeout(30):
                        while True:
                            runs = await ServiceStore(store).runs(dag_id="steps")
                            if runs:
                                states = await _ti_states(store, runs[0].id)
                                if all(states.get(k) == v for k, v in expected.items()):
                                    return int(runs[0].id)
                            await asyncio.sleep(0.05)

                run_pk = await step({"first": "running"})
                # 1. The lock's connection is killed, nobody else wants the lock: the
                #    scheduler takes it back and carries on.
                first_holder = await _holder(admin, backend, database)
                assert first_holder is not None
                await _kill(admin, backend, first_holder)
                async with asyncio.timeout(30):
                    while (await _holder(admin, backend, database)) in (None, first_holder):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                (dags / "go1").write_text("")
                await step({"first": "success", "second": "running"})

                # 2. Killed again, and another session takes the lock first: the
                #    scheduler stops at once and starts nothing more.
                holder: int | None = await _holder(admin, backend, database)
                assert holder is not None
                async with asyncio.timeout(30):
                    while True:
                        # Only a live holder is killed: KILL of a session that has
                        # ended already is an error on MariaDB ("Unknown thread id").
                        if holder is not None:
                            await _kill(admin, backend, holder)
                        if await _take(admin, backend, database):
                            break
                        holder = await _holder(admin, backend, database)
                async with asyncio.timeout(30):
                    await asyncio.wait([task])  # it stops by itself
                assert service.lost_lock
                (dags / "go2").write_text("")
                await asyncio.sleep(0.5)  # had anything still been running, third would start
                states = await _ti_states(store, run_pk)
            finally:
                await store.close()
    finally:
        await admin.close()
        await engine.dispose()
    assert states["first"] == "success"
    assert states["second"] in ("running", "queued")  # left for the next scheduler
    assert states["third"] in ("none", None)
