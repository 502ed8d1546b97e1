"""Triggering a DAG through its params form."""

from __future__ import annotations

import re
from typing import Any

from .conftest import Server, screenshot
from .helpers import runs, wait_run_done

# Where a page shows what is wrong with the input: next to the field or in a banner.
ERROR = "#trigger-form .field-error, #trigger-form .error, [role=alert]"


def test_trigger_form_rejects_a_bad_value_then_creates_the_run(server: Server, page: Any) -> None:
    before = {r["run_id"] for r in runs(server, "ui_params")}
    page.goto(f"{server.url}/dags")
    page.locator('#dag-list tr[data-dag-id="ui_params"] a.trigger').click()
    page.wait_for_url(re.compile(r"/dags/ui_params/trigger"))
    form = page.locator("#trigger-form")
    # The form has one input per param, filled with the defaults.
    assert form.locator('[name="count"]').input_value() == "3"
    assert form.locator('[name="greeting"]').input_value() == "hello"
    screenshot(page, "trigger")

    form.locator('[name="count"]').fill("99")  # maximum 10
    form.locator("button[type=submit]").click()
    message = page.locator(ERROR).filter(has_text=re.compile(r"10")).first
    message.wait_for(state="visible")
    assert "count" in (message.inner_text() + page.locator("#trigger-form").inner_text())
    assert {r["run_id"] for r in runs(server, "ui_params")} == before  # nothing created

    form = page.locator("#trigger-form")
    form.locator('[name="count"]').fill("5")
    form.locator('[name="greeting"]').fill("hi there")
    form.locator("button[type=submit]").click()
    new = server.wait_until(
        "the triggered run",
        lambda: [r for r in runs(server, "ui_params") if r["run_id"] not in before],
    )
    assert len(new) == 1
    assert new[0]["conf"] == {"count": 5, "greeting": "hi there"}
    # The page moves on to the DAG (grid or run page), naming the new run.
    page.wait_for_url(re.compile(r"/dags/ui_params(/|$)(?!trigger)"))
    assert wait_run_done(server, "ui_params", new[0]["run_id"]) == "success"
    assert page.console_errors == []
