"""A failed task: read its log, clear it, watch it succeed."""

from __future__ import annotations

from typing import Any

from .conftest import Server, screenshot
from .helpers import accept_dialogs, run_state, trigger, wait_for_path, wait_run_done


def test_failed_task_log_clear_and_success(server: Server, page: Any) -> None:
    marker = server.home / "flaky.ok"
    marker.unlink(missing_ok=True)
    run_id = trigger(server, "ui_flaky")
    assert wait_run_done(server, "ui_flaky", run_id) == "failed"

    # From the grid: the failed cell leads to the task instance page and its log.
    page.goto(f"{server.url}/dags/ui_flaky/grid")
    failed = page.locator(f'#grid [data-run-id="{run_id}"][data-task-id="check"]')
    assert failed.get_attribute("data-state") == "failed"
    failed.click()
    wait_for_path(page, f"/dags/ui_flaky/runs/{run_id}/tasks/check")
    page.goto(f"{server.url}/dags/ui_flaky/runs/{run_id}/tasks/check")
    log = page.locator("#log")
    log.filter(has_text="marker file flaky.ok is missing").wait_for()
    assert "looking for flaky.ok" in log.inner_text()
    screenshot(page, "task-instance")

    marker.write_text("ok")
    accept_dialogs(page)
    with page.expect_navigation():  # the page reloads itself after a change
        page.locator("button.clear-ti").click()
        page.locator("#flash").filter(has_text="Cleared 1 task instance").wait_for()
    server.wait_until(
        "the cleared task to run again",
        lambda: (
            server.api("GET", f"/dags/ui_flaky/dagRuns/{run_id}/taskInstances/check").json()[
                "try_number"
            ]
            == 2
        ),
        timeout=30,
    )
    assert wait_run_done(server, "ui_flaky", run_id) == "success"
    ti = server.api("GET", f"/dags/ui_flaky/dagRuns/{run_id}/taskInstances/check").json()
    assert ti["state"] == "success"
    assert ti["try_number"] == 2

    # The second try's log says so.
    page.goto(f"{server.url}/dags/ui_flaky/runs/{run_id}/tasks/check")
    page.locator("#log").filter(has_text="looking for flaky.ok").wait_for()
    assert "is missing" not in page.locator("#log").inner_text()
    assert page.console_errors == []


def test_mark_failed_task_success_then_failed(server: Server, page: Any) -> None:
    (server.home / "flaky.ok").unlink(missing_ok=True)
    run_id = trigger(server, "ui_flaky")
    assert wait_run_done(server, "ui_flaky", run_id) == "failed"
    accept_dialogs(page)
    ti_api = f"/dags/ui_flaky/dagRuns/{run_id}/taskInstances/check"

    page.goto(f"{server.url}/dags/ui_flaky/runs/{run_id}/tasks/check/-1")
    with page.expect_navigation():  # the page reloads itself after a change
        page.locator("button.mark-success").click()
        page.locator("#flash").filter(has_text="marked success").wait_for()
    assert server.api("GET", ti_api).json()["state"] == "success"
    server.wait_until(  # the run follows its only task
        "the run to succeed", lambda: run_state(server, "ui_flaky", run_id) == "success", 30
    )

    page.goto(f"{server.url}/dags/ui_flaky/runs/{run_id}/tasks/check/-1")
    with page.expect_navigation():  # the page reloads itself after a change
        page.locator("button.mark-failed").click()
        page.locator("#flash").filter(has_text="marked failed").wait_for()
    assert server.api("GET", ti_api).json()["state"] == "failed"
    assert page.console_errors == []
