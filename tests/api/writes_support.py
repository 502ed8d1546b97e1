"""What the change tests share: a viewer instead of the admin, a DAG recorded as the
scheduler records it, a real scheduler service on the test's database."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fastapi import FastAPI

from airloop.api.deps import User, current_user
from airloop.authoring.dag import DAG
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.service.scheduler_service import SchedulerService
from airloop.settings import Settings
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

FERNET_KEY = Fernet.generate_key().decode()
VIEWER = User("vera", "viewer")


@contextlib.contextmanager
def as_viewer(app: FastAPI) -> Iterator[None]:
    """Requests are made by a viewer: the real role check answers (403 on changes)."""

    async def viewer() -> User:
        return VIEWER

    app.dependency_overrides[current_user] = viewer
    try:
        yield
    finally:
        app.dependency_overrides.pop(current_user, None)


async def record_dags(store: Store, *dags: DAG) -> None:
    """Record DAGs (their table rows and structures) as the scheduler's sync does."""
    await ServiceStore(store).sync_dags(
        {d.dag_id: (d.fileloc or f"/dags/{d.dag_id}.py", None) for d in dags},
        [],
        {d.dag_id: dumps(serialize_dag(d)) for d in dags},
    )


def write_dag(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def scheduler_settings(tmp_path: Path, database_url: str, **values: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        dags_folder=tmp_path / "dags",
        database_url=database_url,
        fernet_key=FERNET_KEY,
        **{"scheduler_poll_interval": 0.2, **values},
    )


@contextlib.asynccontextmanager
async def scheduler(settings: Settings) -> AsyncIterator[SchedulerService]:
    """The real scheduler service in this loop, until the block ends."""
    service = SchedulerService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        async with asyncio.timeout(60):
            await service.ready.wait()
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    """The scheduler runs on its own clock: poll what it writes."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - it reads what the service writes
            await asyncio.sleep(0.05)
