"""The UI pages outside the DAG page (home, DAG list, trigger form, task instance page,
admin pages) rendered by the real app over a real database: key elements present,
admin controls absent for a viewer, nothing the CSP would block. Page rendering is the
same on every backend (the pages read through the API, whose tests cover all three),
so these run on SQLite."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from airloop.api.ui.param_fields import param_fields
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.params import Param
from airloop.core.states import DagRunState, TaskState
from airloop.dagbag.serialized import serialize_dag
from airloop.settings import Settings
from airloop.store.records import ImportErrorRow
from airloop.store.runs import Store
from airloop.store.service import ServiceStore

from .reads_support import mapped_dag, mapped_run, register, write_log
from .ui_support import assert_csp_clean


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'airloop.db'}"


@pytest.fixture
def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path, database_url=database_url, fernet_key=Fernet.generate_key().decode()
    )


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-dag-id="([^"]+)"', html)


async def page(client: httpx.AsyncClient, url: str, status: int = 200) -> str:
    response = await client.get(url)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    assert_csp_clean(response.text)
    return response.text


def params_dag() -> DAG:
    with DAG(
        "params",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        params={
            "n": Param(3, minimum=1, description="how many"),
            "name": Param(type="string"),
            "loud": Param(False),
            "color": Param("red", enum=["red", "green"]),
            "items": Param([1, 2], type="array"),
            "day": Param("2026-01-02", type="string", format="date"),
            "at": Param(None, type=["null", "string"], format="date-time"),
        },
    ) as dag:

        @task
        def one() -> None:
            return None

        one()
    return dag


# -- the DAG list ------------------------------------------------------------------------


async def test_the_dag_list_shows_rows_with_run_circles_and_admin_controls(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("alpha"), mapped_dag("beta", tags=["x"]))
    await mapped_run(api_store, "alpha", day=0, run_state=DagRunState.FAILED)
    await mapped_run(api_store, "alpha", day=1, run_state=DagRunState.SUCCESS)
    html = await page(client, "/dags")
    assert 'id="dag-list"' in html
    assert rows(html) == ["alpha", "beta"]
    alpha = html.split('data-dag-id="alpha"')[1].split("</tr>")[0]
    # oldest first, left to right, each linking to its run page
    assert re.findall(r"run-circle state-(\w+)", alpha) == ["failed", "success"]
    assert 'href="/dags/alpha/runs/scheduled__2026-01-02T00%3A00%3A00%2B00%3A00"' in alpha
    assert "<code>@daily</code>" in alpha
    assert 'class="tag"' in html
    assert ">team</a>" in alpha
    assert "ops" in alpha
    assert html.count('class="pause-toggle"') == 2
    assert html.count('class="trigger button" href="/dags/alpha/trigger"') == 1
    assert "/ui/static/dags.js" in html


async def test_the_dag_list_filters_on_the_server(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(
        api_store, mapped_dag("alpha"), mapped_dag("beta", tags=["x"]), mapped_dag("gamma")
    )
    await mapped_run(api_store, "alpha", run_state=DagRunState.FAILED)
    await mapped_run(api_store, "gamma", run_state=DagRunState.SUCCESS)
    assert rows(await page(client, "/dags?search=ET")) == ["beta"]
    assert rows(await page(client, "/dags?tags=x")) == ["beta"]
    assert rows(await page(client, "/dags?last_state=failed")) == ["alpha"]
    html = await page(client, "/dags?search=nothing-like-this")
    assert rows(html) == []
    assert 'id="no-dags"' in html
    await ServiceStore(api_store).set_paused("gamma", True)
    assert rows(await page(client, "/dags?paused=true")) == ["gamma"]


async def test_the_dag_list_pages_by_fifty(client: httpx.AsyncClient, api_store: Store) -> None:
    await register(api_store, *(mapped_dag(f"d{i:03}") for i in range(55)))
    first = await page(client, "/dags")
    assert len(rows(first)) == 50
    assert 'class="next" href="?offset=50"' in first
    second = await page(client, "/dags?offset=50")
    assert rows(second) == [f"d{i:03}" for i in range(50, 55)]
    assert 'class="prev" href="?offset=0"' in second


async def test_a_page_refuses_what_it_does_not_take(client: httpx.AsyncClient) -> None:
    html = await page(client, "/dags?serach=x", 400)
    assert "unknown query parameter(s): serach" in html
    assert "must be one of" in await page(client, "/dags?last_state=purple", 400)
    assert "not an integer" in await page(client, "/dags?offset=ten", 400)
    assert "unknown query parameter(s): x" in await page(client, "/admin/pools?x=1", 400)


async def test_a_viewer_sees_no_pause_toggle_nor_trigger(
    viewer: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("alpha"))
    await ServiceStore(api_store).set_paused("alpha", True)
    html = await page(viewer, "/dags")
    assert rows(html) == ["alpha"]
    assert "pause-toggle" not in html
    assert 'class="trigger' not in html
    assert "paused-label" in html
    assert 'data-role="viewer"' in html
    assert "/admin/connections" not in html  # no admin links in the navigation
    assert "needs the admin role" in await page(viewer, "/dags/alpha/trigger", 403)


# -- the trigger form ----------------------------------------------------------------------


def test_each_param_gets_the_input_its_schema_asks_for() -> None:
    detail = serialize_dag(params_dag())["params"]  # what GET /dags/{dag_id} answers
    fields = {f.name: f for f in param_fields(detail)}
    assert {n: f.kind for n, f in fields.items()} == {
        "n": "integer",
        "name": "string",
        "loud": "boolean",
        "color": "enum",
        "items": "json",
        "day": "date",
        "at": "datetime",
    }
    assert fields["n"].value == "3"
    assert fields["n"].minimum == 1
    assert fields["n"].description == "how many"
    assert fields["name"].required
    assert not fields["n"].required
    assert fields["color"].option_values == ['"red"', '"green"']
    assert fields["items"].value == "[\n  1,\n  2\n]"
    assert fields["at"].nullable
    assert not fields["at"].required


def test_a_secret_default_is_not_shown_nor_sent_back_as_the_mask() -> None:
    # GET /dags/{id} masks the default of a sensitive-looking param: the form must not
    # show "***" as the value (submitting it would make "***" the run's value).
    detail = {
        "token": {"schema": {"type": ["string", "null"]}, "description": None, "default": "***"},
    }
    (token,) = param_fields(detail)
    assert token.value == ""
    assert not token.required
    assert not token.nullable  # empty: left out of conf, so the real default applies
    assert "default is secret" in (token.description or "")


async def test_the_trigger_form_has_one_input_per_param(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, params_dag())
    html = await page(client, "/dags/params/trigger")
    assert 'id="trigger-form"' in html
    assert 'data-dag-id="params"' in html
    assert re.search(r'<input type="number" id="[^"]+" name="n" value="3" step="1" min="1"', html)
    assert re.search(r'<input type="text" id="[^"]+" name="name" value=""', html)
    assert re.search(r'<input type="checkbox" id="[^"]+" name="loud">', html)
    assert re.search(r'<select id="[^"]+" name="color">', html)
    assert '<option value="&#34;red&#34;" selected>red</option>' in html
    assert re.search(r'<textarea id="[^"]+" name="items"', html)
    assert re.search(r'<input type="date" id="[^"]+" name="day" value="2026-01-02"', html)
    assert re.search(r'<input type="datetime-local" id="[^"]+" name="at"', html)
    assert "how many" in html
    assert 'data-error-for="n"' in html
    assert '<button type="submit"' in html
    assert "/ui/static/trigger.js" in html


async def test_triggering_an_unknown_dag_says_so(client: httpx.AsyncClient) -> None:
    html = await page(client, "/dags/nope/trigger", 404)
    assert "nope" in html


# -- the task instance page --------------------------------------------------------------------


async def test_the_task_instance_page_has_logs_xcom_rendered_and_details(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    await register(api_store, mapped_dag("m"))
    pk = await mapped_run(api_store, "m", states=[TaskState.SUCCESS, TaskState.FAILED])
    await write_log(api_store, tmp_path / "logs", pk, "numbers", -1, 1, "hello\n")
    run = "/dags/m/runs/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00"
    html = await page(client, f"{run}/tasks/numbers/-1")
    assert 'id="log"' in html
    assert re.search(r'<select id="try-select">\s*<option value="1" selected>1</option>', html)
    assert "logs/1?map_index=-1&amp;download=true" in html
    assert "return_value" in html
    assert "[\n  1,\n  2,\n  3\n]" in html.replace("&#10;", "\n")
    assert 'id="ti-details"' in html
    assert "PythonTaskOperator" in html
    assert 'class="state-badge state-success"' in html
    for action in ("clear-ti", "mark-success", "mark-failed"):
        assert f'class="{action}' in html
    data = re.search(r'<script type="application/json" id="ti-data">(.*?)</script>', html, re.S)
    assert data is not None
    assert '"task_id": "numbers"' in data.group(1)
    assert '"logs": {"1": true}' in data.group(1)  # the script fetches only existing logs

    mapped = await page(client, f"{run}/tasks/group.double/1")
    assert 'class="state-badge state-failed"' in mapped
    assert f'href="{run}/tasks/group.double"' in mapped  # back to the instances table


async def test_a_viewer_gets_no_task_instance_actions(
    viewer: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("m"))
    await mapped_run(api_store, "m")
    html = await page(viewer, "/dags/m/runs/scheduled__2026-01-01T00:00:00+00:00/tasks/numbers/-1")
    assert 'id="log"' in html
    for action in ("clear-ti", "mark-success", "mark-failed"):
        assert action not in html


async def test_an_unknown_task_instance_is_a_404_page(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("m"))
    await mapped_run(api_store, "m")
    html = await page(
        client, "/dags/m/runs/scheduled__2026-01-01T00:00:00+00:00/tasks/nope/-1", 404
    )
    assert "nope" in html


# -- home ------------------------------------------------------------------------------------------


async def test_home_lists_every_live_scheduler_when_several_share_the_database(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    from sqlalchemy import insert

    from airloop.store.db_clock import db_later
    from airloop.store.schema import scheduler_heartbeat

    now = datetime.now(UTC)
    dialect = api_store.engine.dialect
    async with api_store.engine.begin() as conn:
        for host, dags in (("alpha-host", 7), ("beta-host", 5)):
            await conn.execute(
                insert(scheduler_heartbeat).values(
                    hostname=host,
                    pid=1,
                    state="running",
                    mode="ha",
                    started_at=now,
                    heartbeat_at=now,
                    expires_at=db_later(dialect, 60),
                    dags_owned=dags,
                )
            )
    html = await page(client, "/")
    table = html[html.index('id="live-schedulers"') :]
    assert "alpha-host" in table
    assert "beta-host" in table
    assert "2 schedulers alive" in html


async def test_home_shows_health_run_counts_and_import_errors(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("alpha"))
    await mapped_run(api_store, "alpha", day=0, run_state=DagRunState.RUNNING)
    await mapped_run(api_store, "alpha", day=1, run_state=DagRunState.FAILED)
    dag = mapped_dag("alpha")
    await ServiceStore(api_store).sync_dags(
        {"alpha": (dag.fileloc, "@daily")},
        [ImportErrorRow("/dags/broken.py", 3, "SyntaxError: invalid syntax", "Traceback ...")],
    )
    html = await page(client, "/")
    assert 'id="health-database"' in html
    assert "health-healthy" in html
    assert 'id="health-scheduler"' in html
    assert re.search(r'id="running-runs"[^>]*>1<', html)
    assert re.search(r'id="failed-runs"[^>]*>1<', html)
    assert "/dags/broken.py" in html
    assert "SyntaxError: invalid syntax" in html
    assert '<details class="traceback">' in html
    assert "Traceback ..." in html
    assert 'id="failing-dags"' in html


# -- admin pages ---------------------------------------------------------------------------------


async def _csrf(client: httpx.AsyncClient) -> dict[str, str]:
    """The double-submit token a page's script sends (auth = none)."""
    await client.get("/admin/pools")
    return {"X-CSRF-Token": client.cookies["airloop_csrf"]}


async def test_admin_pages_list_rows_and_never_show_secrets(client: httpx.AsyncClient) -> None:
    headers = await _csrf(client)
    created = await client.post(
        "/api/v1/connections",
        json={
            "conn_id": "warehouse",
            "conn_type": "postgres",
            "host": "db.example",
            "password": "hunter2-secret",
            "extra": '{"api_token": "tok-very-secret", "region": "eu"}',
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert (
        await client.post(
            "/api/v1/variables",
            json={"key": "db_password", "value": "pw-very-secret"},
            headers=headers,
        )
    ).status_code == 201
    assert (
        await client.post(
            "/api/v1/variables", json={"key": "region", "value": "eu-west"}, headers=headers
        )
    ).status_code == 201
    assert (
        await client.post("/api/v1/pools", json={"name": "big", "slots": 7}, headers=headers)
    ).status_code == 201

    conns = await page(client, "/admin/connections")
    assert '<tr data-key="warehouse"' in conns
    assert "db.example" in conns
    assert "hunter2-secret" not in conns
    assert "tok-very-secret" not in conns
    assert 'type="password" id="admin-password"' in conns
    assert 'id="admin-dialog"' in conns
    assert "/ui/static/admin.js" in conns

    variables = await page(client, "/admin/variables")
    assert "pw-very-secret" not in variables
    assert "***" in variables
    assert "eu-west" in variables

    pools = await page(client, "/admin/pools")
    assert '<tr data-key="big"' in pools
    assert '<tr data-key="default_pool"' in pools


async def test_a_viewer_reads_admin_pages_without_controls(viewer: httpx.AsyncClient) -> None:
    for slug in ("pools", "connections", "variables"):
        html = await page(viewer, f"/admin/{slug}")
        assert 'id="admin-table"' in html
        assert 'id="admin-new"' not in html
        assert 'class="edit"' not in html
        assert 'id="admin-dialog"' not in html
