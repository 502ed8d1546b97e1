"""airloop's own work never blocks its loop: starting the Dask executor in a fresh
interpreter (where importing distributed takes a second or more) leaves the loop free."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import DAGS

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from airloop.dagbag.loader import load_dag_file
    from airloop.engine.engine import Engine
    from airloop.settings import Settings

    async def main(dags: str, home: str) -> None:
        assert "distributed" not in sys.modules
        dag = load_dag_file(Path(dags)).dags["sync_off_loop"]
        settings = Settings(
            home=home, use_async=False, sync_executor="dask", dask_workers=1,
            dask_threads_per_worker=2, loop_block_threshold=0.5,
        )
        async with Engine(settings) as engine:
            result = await engine.run(dag)
            assert engine.watchdog is not None
            blocks = [b for b in engine.watchdog.blocks if b.cause == "airloop"]
        print(result.state.value)
        for block in blocks:
            print(f"BLOCK {block.seconds:.2f}s {block.location}")

    if __name__ == "__main__":  # Dask's worker processes import this file again
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_starting_the_dask_executor_does_not_block_the_loop(tmp_path: Path) -> None:
    script = tmp_path / "start_dask.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(DAGS), str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "success", done.stderr[-3000:]
    assert [line for line in lines if line.startswith("BLOCK")] == []
