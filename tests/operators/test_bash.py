"""BashOperator, @task.bash and PythonOperator on all four executors, with real bash
processes: output into the task log, XComs, skips, failures, and no process left
behind after a timeout, a cancellation or a command that leaves children running."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from airloop import DagRunState
from airloop.authoring.dag import DAG
from airloop.core.states import TaskState
from airloop.engine.active_run import ActiveRun
from airloop.engine.engine import Engine

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAY = datetime(2026, 5, 4, tzinfo=UTC)


async def rows(engine: Engine, run_pk: int) -> dict[str, Any]:
    return {r.task_id: r for r in await engine.store.task_instances(run_pk)}


async def xcoms(engine: Engine, run_pk: int) -> dict[str, Any]:
    return {
        x.task_id: json.loads(x.value)
        for x in await engine.store.xcom_values(run_pk)
        if x.key == "return_value"
    }


async def log_of(engine: Engine, run_pk: int, task_id: str, until: str) -> str:
    """The task's (first try's) log once ``until`` (a regular expression) matches it."""
    paths = {r.task_id: r.path for r in await engine.store.log_paths(run_pk)}
    async with asyncio.timeout(30):
        while True:
            path = Path(paths[task_id])
            text = await asyncio.to_thread(_read, path)
            if re.search(until, text):
                return text
            await asyncio.sleep(0.05)


def marked(mark: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries MARK=mark."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MARK") == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_gone(pids: list[int]) -> None:
    """None of ``pids`` runs. A zombie may remain only as an orphan (init's to reap:
    this machine's init does not; bash, airloop's direct child, is checked apart)."""
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            status, parent = proc.status(), proc.ppid()
        except psutil.NoSuchProcess:
            continue
        assert status == psutil.STATUS_ZOMBIE, f"pid {pid} still {status}"
        assert parent == 1 or not alive(parent), f"zombie {pid} left to a live parent {parent}"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_for(run: ActiveRun, predicate: Any, within: float = 30) -> None:
    """Event-driven: checked after every scheduler tick of ``run``."""
    reached = asyncio.Event()
    unsubscribe = run.subscribe(lambda r: reached.set() if predicate(r) else None)
    try:
        async with asyncio.timeout(within):
            while not predicate(run):
                await reached.wait()
                reached.clear()
    finally:
        unsubscribe()


def pids_in(log: str) -> tuple[int, list[int]]:
    leader = int(re.search(r"leader (\d+)", log).group(1))  # type: ignore[union-attr]
    return leader, [int(p) for p in re.findall(r"child (\d+)", log)]


async def test_bash_outputs_xcoms_skips_and_failures(engine: Engine, dags: dict[str, DAG]) -> None:
    mark = uuid.uuid4().hex
    result = await engine.run(
        dags["bash_basics"], params={"where": "there", "mark": mark}, logical_date=DAY
    )
    assert result.state is DagRunState.FAILED  # "fails", "no_cwd" and "no_bash" fail
    table = await rows(engine, result.run_pk)
    states = {t: r.state for t, r in table.items()}
    assert states == {
        "templated": "success",
        "script": "success",
        "env_only": "success",
        "env_appended": "success",
        "in_cwd": "success",
        "skips": "skipped",
        "skips_on_list": "skipped",
        "fails": "failed",
        "no_cwd": "failed",
        "no_bash": "failed",
        "processed": "success",
        "leaves_one": "success",
        "built": "success",
        "python": "success",
        "empty": "success",
    }
    assert table["fails"].error == "BashCommandError: bash command failed: exit code 1"
    assert table["no_cwd"].error == (
        "SubprocessStartError: cannot start bash: cwd '/nonexistent/airloop/dir' does not exist"
    )
    assert table["no_bash"].error == (
        "SubprocessStartError: cannot start bash: 'bash' not found on PATH"
    )
    assert table["skips"].error == "bash command exited with code 99 (skip_on_exit_code)"
    values = await xcoms(engine, result.run_pk)
    assert values["templated"] == "last there"
    assert values["script"] == "script for 2026-05-04 in there"
    assert values["env_only"] == "there|nohome|env_only"  # env replaces the environment
    assert values["env_appended"] == "yes|haspath"
    assert values["in_cwd"] == "/tmp"
    assert values["processed"] == 6
    assert values["leaves_one"] == "done"
    assert values["built"] == "count 3 there 2026-05-04"
    assert values["python"] == [3, "2026-05-04", "20260504"]
    assert "empty" not in values
    # Output lines (stdout and stderr) reach the task log as log records.
    log = await log_of(engine, result.run_pk, "templated", "success in")
    lines = [line.split(" - ", 1)[1] for line in log.splitlines() if " - " in line]
    assert lines.index("day 2026-05-04") < lines.index("to stderr") < lines.index("last there")
    failed = await log_of(engine, result.run_pk, "fails", "failed")
    assert "about to fail" in failed
    # What a command leaves running in its group is terminated when it exits.
    leaves = await log_of(engine, result.run_pk, "leaves_one", "success in")
    assert_gone([int(p) for p in re.findall(r"child (\d+)", leaves)])
    assert marked(mark) == []


async def test_timeout_terminates_the_whole_process_tree(
    engine: Engine, dags: dict[str, DAG]
) -> None:
    mark = uuid.uuid4().hex
    result = await engine.run(dags["bash_timeout"], params={"mark": mark})
    table = await rows(engine, result.run_pk)
    assert table["tree"].state == "failed"
    assert "execution_timeout of 5s exceeded" in table["tree"].error
    log = await log_of(engine, result.run_pk, "tree", "execution_timeout")
    leader, children = pids_in(log)
    assert len(children) == 3
    assert marked(mark) == []
    assert_gone(children)
    assert not psutil.pid_exists(leader), "bash itself is reaped"


async def test_sigkill_after_the_grace_for_a_command_ignoring_sigterm(
    engine: Engine, dags: dict[str, DAG]
) -> None:
    mark = uuid.uuid4().hex
    result = await engine.run(dags["bash_stubborn"], params={"mark": mark})
    table = await rows(engine, result.run_pk)
    assert table["tree"].state == "failed"
    assert "execution_timeout of 3s exceeded" in table["tree"].error
    log = await log_of(engine, result.run_pk, "tree", "execution_timeout")
    _, children = pids_in(log)
    assert marked(mark) == []
    assert_gone(children)


async def test_cancellation_terminates_the_whole_process_tree(
    engine: Engine, dags: dict[str, DAG], executor_name: str
) -> None:
    if executor_name == "dask":
        pytest.skip("Dask does not interrupt a running task: a cancelled command runs on")
    mark = uuid.uuid4().hex
    run = await engine.start_run(dags["bash_cancel"], params={"mark": mark})

    def running(r: ActiveRun) -> bool:
        return r.state_of(r.keys("tree")[0]) is TaskState.RUNNING

    await wait_for(run, running)
    log = await log_of(engine, run.run_pk, "tree", r"(?s)(child \d+.*){3}")
    log = await log_of(engine, run.run_pk, "tree", r"leader \d+")
    leader, children = pids_in(log)
    assert marked(mark), "the tree runs"
    assert engine.cancel(run, "tree", reason="test cancel")
    result = await asyncio.wait_for(asyncio.shield(run.done), 30)
    table = await rows(engine, result.run_pk)
    assert table["tree"].state == "failed"
    assert table["tree"].error == "interrupted: test cancel"
    assert marked(mark) == []
    assert_gone(children)
    assert not psutil.pid_exists(leader), "bash itself is reaped"


async def test_no_zombie_child_of_this_process() -> None:
    """bash is reaped by whoever started it (this process on async/thread)."""
    me = psutil.Process(os.getpid())
    zombies = [c.pid for c in me.children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
