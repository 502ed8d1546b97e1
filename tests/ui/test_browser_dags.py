"""The DAG list page in a real browser."""

from __future__ import annotations

from typing import Any

from .conftest import TEST_DAGS, Server, screenshot


def test_dag_list_shows_the_dags(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/dags")
    page.wait_for_selector("#dag-list tr[data-dag-id]")
    shown = page.eval_on_selector_all(
        "#dag-list tr[data-dag-id]", "rows => rows.map(r => r.dataset.dagId)"
    )
    assert set(TEST_DAGS) <= set(shown)
    # Admin (auth = none): each DAG has a trigger link and a pause toggle.
    row = page.locator('#dag-list tr[data-dag-id="ui_params"]')
    assert row.locator("a.trigger").count() == 1
    assert row.locator("button.pause-toggle").count() == 1
    screenshot(page, "dags")
    assert page.console_errors == []
    assert page.http_errors == []


def test_pause_toggle_pauses_the_dag(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/dags")
    row = page.locator('#dag-list tr[data-dag-id="ui_mapped"]')
    row.locator("button.pause-toggle").click()
    server.wait_until(
        "ui_mapped paused", lambda: server.api("GET", "/dags/ui_mapped").json()["is_paused"]
    )
    row = page.locator('#dag-list tr[data-dag-id="ui_mapped"]')
    row.locator("button.pause-toggle").click()
    server.wait_until(
        "ui_mapped unpaused",
        lambda: server.api("GET", "/dags/ui_mapped").json()["is_paused"] is False,
    )
    assert page.console_errors == []
    assert page.http_errors == []
