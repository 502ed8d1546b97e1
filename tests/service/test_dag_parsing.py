"""DAG files that crash, exit, hang or blow up their memory at import: each is that
file's import error, and the scheduler goes on scheduling the others (a real
``airloop scheduler`` process, as a user runs it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from airloop.service.dagfolder import DagFolder
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

GOOD = """
from airloop import DAG, task

with DAG("good") as dag:
    @task
    def hello() -> str:
        return "hello"
    hello()
"""

BAD = {
    "exits.py": "import os\nos._exit(3)\n",
    "sys_exit.py": "import sys\n\nsys.exit(1)\n",
    "segfault.py": "import ctypes\nctypes.string_at(0)\n",
    # 16 x 256 MB, each written to: far more than the 512 MB the test allows.
    "memory.py": "chunks = []\nfor _ in range(16):\n    chunks.append(bytearray(256 * 2**20))\n",
}

HANGS = """
import pathlib, time
pathlib.Path(__file__).with_name("hang-started").write_text("")
time.sleep(600)
"""


def _errors(db: Path) -> dict[str, tuple[str, int | None]]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT fileloc, message, line FROM import_error").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {Path(f).name: (m, line) for f, m, line in rows}


def _run_state(db: Path, run_id: str) -> str | None:
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT state FROM dag_run WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


async def _until(
    check: Callable[[], Awaitable[bool]], service: asyncio.subprocess.Process, within: float
) -> None:
    async with asyncio.timeout(within):
        while not await check():
            assert service.returncode is None, f"the scheduler died (exit {service.returncode})"
            await asyncio.sleep(0.1)


async def test_dag_files_that_crash_exit_hang_or_eat_memory_do_not_stop_the_scheduler(
    tmp_path: Path,
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "good.py").write_text(textwrap.dedent(GOOD))
    for name, text in BAD.items():
        (dags / name).write_text(text)
    (dags / "hangs.py").write_text(textwrap.dedent(HANGS))
    db = tmp_path / "home" / "airloop.db"
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(tmp_path / "home"),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.2",
        "AIRLOOP_DAG_PARSE_TIMEOUT": "90",
        "AIRLOOP_DAG_PARSE_MEMORY_LIMIT": "512",
    }
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airloop", "scheduler", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        async def all_bad_recorded() -> bool:
            return set(BAD) <= set(await asyncio.to_thread(_errors, db))

        await _until(all_bad_recorded, service, within=60)
        assert (dags / "hang-started").exists()  # hangs.py is being parsed meanwhile

        # Queued as 'airloop dags trigger' does (the CLI itself would parse the folder).
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            await ServiceStore(store).queue_run("good", "g1", {}, datetime.now(UTC))
        finally:
            await store.close()

        async def good_done() -> bool:
            return await asyncio.to_thread(_run_state, db, "g1") == "success"

        await _until(good_done, service, within=60)
        # Scheduling went on while hangs.py's parse was still in progress.
        errors = await asyncio.to_thread(_errors, db)
        assert "hangs.py" not in errors
        assert service.returncode is None

        assert "exit code 3" in errors["exits.py"][0]
        assert "sys.exit(1)" in errors["sys_exit.py"][0]
        assert errors["sys_exit.py"][1] == 3
        assert "SIGSEGV" in errors["segfault.py"][0]
        assert errors["segfault.py"][1] == 2
        assert "MemoryError" in errors["memory.py"][0]
        assert errors["memory.py"][1] == 3
        descendants = psutil.Process(service.pid).children(recursive=True)
        assert descendants  # the parser process of hangs.py (and the forkserver)
    finally:
        if service.returncode is None:
            service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 60)
    assert service.returncode == 0
    # Nothing left behind: the hanging parser was killed and reaped on the way out.
    _, alive = await asyncio.to_thread(psutil.wait_procs, descendants, 20)
    assert alive == []


async def test_a_file_killed_for_its_time_limit_is_not_parsed_again_until_it_changes(
    tmp_path: Path,
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    counter = dags / "imports.txt"
    hangs = dags / "hangs.py"
    hangs.write_text(
        f"import time\nwith open({str(counter)!r}, 'a') as fh:\n    fh.write('x')\ntime.sleep(60)\n"
    )
    (dags / "good.py").write_text(textwrap.dedent(GOOD))
    folder = DagFolder(dags, parse_timeout=3.0)
    state, _ = await folder.refresh(everything=True)
    assert "good" in state.dags
    message = str(state.errors[str(hangs)])
    assert "import took longer than 3s (the parser process was killed" in message
    state, _ = await folder.refresh(everything=True)
    assert str(hangs) in state.errors
    assert counter.read_text() == "x"  # parsed once, not again
    hangs.write_text("from airloop import DAG\ndag = DAG('fixed')\n")
    os.utime(hangs, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    state, _ = await folder.refresh()
    assert "fixed" in state.dags
    assert str(hangs) not in state.errors
