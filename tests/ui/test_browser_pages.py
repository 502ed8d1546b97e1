"""Every page of the UI opens in a real browser without script errors or failed
requests, and leaves a screenshot in .ci/artifacts/ (docs/img/ with
AIRLOOP_DOC_IMAGES=1: the images of docs/ui.md)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .conftest import REPO, Server, screenshot
from .helpers import trigger, wait_run_done

DOC_IMAGES = REPO / "docs" / "img"


@pytest.fixture(scope="module")
def finished_runs(server: Server) -> dict[str, str]:
    """Finished runs: three of the mapped DAG (the grid has columns to show) and a
    failed one of the flaky DAG. Returns the newest run id of each."""
    (server.home / "flaky.ok").unlink(missing_ok=True)
    runs = {}
    for dag_id in ("ui_mapped", "ui_mapped", "ui_mapped", "ui_flaky"):
        runs[dag_id] = trigger(server, dag_id)
        wait_run_done(server, dag_id, runs[dag_id])
    return runs


# name -> (path, a selector that shows the page has drawn its content)
PAGES: dict[str, tuple[str, str]] = {
    "home": ("/", "body"),
    "dags": ("/dags", "#dag-list tr[data-dag-id]"),
    "grid": ("/dags/ui_mapped/grid", "#grid [data-run-id][data-task-id]"),
    "graph": ("/dags/ui_mapped/graph", "svg"),
    "runs": ("/dags/ui_mapped/runs", "table"),
    "code": ("/dags/ui_params/code", "pre"),
    "details": ("/dags/ui_params/details", "body"),
    "trigger": ("/dags/ui_params/trigger", "#trigger-form"),
    "run": ("/dags/ui_mapped/runs/{ui_mapped}", "body"),
    "mapped": ("/dags/ui_mapped/runs/{ui_mapped}/tasks/work", "table tbody tr"),
    "task-instance": ("/dags/ui_flaky/runs/{ui_flaky}/tasks/check/-1", "#log:not(:empty)"),
    "pools": ("/admin/pools", "body"),
    "connections": ("/admin/connections", "body"),
    "variables": ("/admin/variables", "body"),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_opens_cleanly(
    server: Server, finished_runs: dict[str, str], page: Any, name: str
) -> None:
    path, ready = PAGES[name]
    response = page.goto(server.url + path.format(**finished_runs))
    assert response is not None
    assert response.status == 200, f"{path}: {response.status}"
    page.wait_for_selector(ready)
    assert page.title()
    screenshot(page, f"page-{name}")
    if os.environ.get("AIRLOOP_DOC_IMAGES"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / f"{name}.png"))
    assert page.console_errors == []
    assert page.http_errors == []
