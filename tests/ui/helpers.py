"""Small helpers shared by the browser tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from .conftest import Server

DONE = ("success", "failed")


def trigger(server: Server, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Trigger a run through the API as a script would; returns its run_id."""
    response = server.api("POST", f"/dags/{dag_id}/dagRuns", json={"conf": conf or {}})
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


def run_state(server: Server, dag_id: str, run_id: str) -> str:
    response = server.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


def wait_run_done(server: Server, dag_id: str, run_id: str, timeout: float = 60) -> str:
    return str(
        server.wait_until(
            f"run {run_id} of {dag_id} to end",
            lambda: (state := run_state(server, dag_id, run_id)) in DONE and state,
            timeout,
        )
    )


def runs(server: Server, dag_id: str) -> list[dict[str, Any]]:
    response = server.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def accept_dialogs(page: Any) -> None:
    """Confirm dialogs ("Clear this task?") are answered yes."""
    page.on("dialog", lambda dialog: dialog.accept())


def wait_for_path(page: Any, prefix: str) -> None:
    """Wait until the page's path (decoded: run ids hold ':' and '+') starts with ``prefix``."""
    page.wait_for_url(
        lambda url: unquote(url.split("://", 1)[1].split("/", 1)[1]).startswith(prefix.lstrip("/"))
    )
