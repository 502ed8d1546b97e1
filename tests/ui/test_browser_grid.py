"""The grid: states change live (no reload), a mapped task is one bar, and its
instances are listed on their own page."""

from __future__ import annotations

from typing import Any

from .conftest import Server, screenshot
from .helpers import trigger, wait_for_path, wait_run_done


def cell(run_id: str, task_id: str) -> str:
    return f'#grid [data-run-id="{run_id}"][data-task-id="{task_id}"]'


def test_grid_updates_live_without_reload(server: Server, page: Any) -> None:
    run_id = trigger(server, "ui_mapped")
    page.goto(f"{server.url}/dags/ui_mapped/grid")
    page.wait_for_selector(cell(run_id, "slow_start"))
    # A mark on this document: a reload or a navigation would drop it.
    page.evaluate("window.__same_document = true")
    first = page.get_attribute(cell(run_id, "slow_start"), "data-state")
    assert first != "success"  # slow_start sleeps 3 s: the page saw it before it ended

    # slow_start ends, then the 50 mapped instances run: the page follows by itself.
    page.wait_for_function(
        """sel => document.querySelector(sel)?.dataset.state === 'success'""",
        arg=cell(run_id, "slow_start"),
        timeout=30_000,
    )
    page.wait_for_selector(f"{cell(run_id, 'work')} .bar", timeout=30_000)
    assert wait_run_done(server, "ui_mapped", run_id) == "success"
    page.wait_for_function(
        """sel => document.querySelector(sel)?.dataset.state === 'success'""",
        arg=cell(run_id, "items"),
        timeout=30_000,
    )
    assert page.evaluate("window.__same_document === true")
    # A mapped task is one cell with a bar, never one element per instance.
    assert page.locator(cell(run_id, "work")).count() == 1
    assert page.locator(f"{cell(run_id, 'work')} .bar").count() >= 1
    screenshot(page, "grid")
    assert page.console_errors == []


def test_mapped_instances_page_lists_the_instances(server: Server, page: Any) -> None:
    run_id = trigger(server, "ui_mapped")
    assert wait_run_done(server, "ui_mapped", run_id) == "success"
    page.goto(f"{server.url}/dags/ui_mapped/grid")
    page.locator(cell(run_id, "work")).click()
    wait_for_path(page, f"/dags/ui_mapped/runs/{run_id}/tasks/work")
    page.goto(f"{server.url}/dags/ui_mapped/runs/{run_id}/tasks/work")
    rows = page.locator("table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 50
    text = page.locator("table tbody").inner_text()
    assert "49" in text
    assert "success" in text
    screenshot(page, "mapped-instances")
    assert page.console_errors == []
