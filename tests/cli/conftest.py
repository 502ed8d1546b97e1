"""Fixtures for the CLI end-to-end tests (helpers live in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import AIRLOOP


@pytest.fixture(scope="session", autouse=True)
def _console_script_installed() -> None:
    if not AIRLOOP.is_file():
        pytest.fail(f"the airloop console script is not installed at {AIRLOOP}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """This test's AIRLOOP_HOME (created by the CLI when it needs it)."""
    return tmp_path / "home"
