"""Small shared steps of the several-scheduler tests: triggering, waiting, reading
the markers the tasks leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .cluster import Cluster
from .db import Db

#: Trigger calls at once: each parses a DAG file (seconds of CPU on a busy machine).
TRIGGERS_AT_ONCE = 2


def trigger_folder(cluster: Cluster, dag_id: str) -> Path:
    """A folder holding only ``dag_id``'s file: ``airloop dags trigger`` parses the
    folder it is given, and one file of ten is a tenth of the CPU."""
    folder = cluster.root / "trigger" / dag_id
    if not folder.exists():
        folder.mkdir(parents=True)
        name = f"{dag_id}.py"
        (folder / name).write_text((cluster.dags / name).read_text())
    return folder


async def trigger_all(cluster: Cluster, runs: list[tuple[str, str]]) -> None:
    """``airloop dags trigger <dag> --run-id <run>`` for each, a few at a time."""
    gate = asyncio.Semaphore(TRIGGERS_AT_ONCE)

    async def one(dag_id: str, run_id: str) -> None:
        folder = str(trigger_folder(cluster, dag_id))
        async with gate:
            done = await cluster.cli(
                "dags", "trigger", dag_id, "--run-id", run_id, "--dags-folder", folder
            )
        assert done.returncode == 0, f"trigger {dag_id} {run_id}: {done.stdout}{done.stderr}"

    async with asyncio.TaskGroup() as group:
        for dag_id, run_id in runs:
            group.create_task(one(dag_id, run_id))


async def queue_runs(db_url: str, runs: list[tuple[str, str]]) -> None:
    """Queue runs as ``airloop dags trigger`` does once it has parsed the DAG (the
    same store call), without a CLI process per run: each costs seconds of CPU on
    this machine, and twenty of them would double the test's length."""
    from airloop.store.runs import Store
    from airloop.store.service import ServiceStore

    store = await Store.open(db_url, auto_migrate=False)
    try:
        for dag_id, run_id in runs:
            await ServiceStore(store).queue_run(dag_id, run_id, {}, datetime.now(UTC))
    finally:
        await store.close()


async def until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.5
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within:g}s: {what}")
        await asyncio.sleep(interval)


async def wait_finished(db: Db, runs: int, within: float) -> dict[tuple[str, str], str]:
    """Until ``runs`` runs are success or failed; their states."""
    states: dict[tuple[str, str], str] = {}

    async def finished() -> bool:
        nonlocal states
        states = await db.run_states()
        return sum(s in ("success", "failed") for s in states.values()) >= runs

    try:
        await until(finished, within, f"{runs} runs finished")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; states: {states}") from None
    return states


@dataclass(frozen=True)
class Marker:
    """One try's claim: markers/<dag>/<run>/<task>.<map>.<try>."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    pid: int
    at: float
    kind: str


def markers(root: Path) -> list[Marker]:
    found: list[Marker] = []
    base = root / "markers"
    if not base.exists():
        return found
    for path in base.glob("*/*/*"):
        task_id, map_index, try_number = path.name.rsplit(".", 2)
        fields = path.read_text().split()
        if not fields:
            # Created, then the process was SIGKILLed before it wrote a line: the
            # start still counts (the key is the file name), its writer is unknown.
            fields = ["?", "0", "0", "killed-while-claiming"]
        _host, pid, at, kind = fields
        found.append(
            Marker(
                path.parent.parent.name,
                path.parent.name,
                task_id,
                int(map_index),
                int(try_number),
                int(pid),
                float(at),
                kind,
            )
        )
    return found
