"""The CLI starts without importing the database, web or engine layers.

``airloop --version`` and ``--help`` must stay quick: the command modules import their
heavy dependencies inside the commands that need them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "fastapi", "uvicorn")


def test_importing_the_cli_does_not_import_heavy_modules() -> None:
    code = (
        "import json, sys, airloop.cli.main; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
