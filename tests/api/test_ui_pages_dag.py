"""The DAG pages, the run page, the mapped instances table and the live stream, against
the real app and a real database: a DAG synced as the scheduler syncs it, runs and
instances written through the store as the scheduler writes them."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from airloop.api.app import create_app
from airloop.api.ui.graph_layout import layout
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.params import Param
from airloop.authoring.taskgroup import TaskGroup
from airloop.core.states import TaskState
from airloop.dagbag.serialized import dumps, serialize_dag
from airloop.settings import Settings
from airloop.store.read_records import TaskInstanceFilter
from airloop.store.records import Expansion, NewTaskInstance, TIUpdate, WriteBatch
from airloop.store.runs import Store
from airloop.store.service import ServiceStore
from airloop.store.ti_reads import TaskInstanceReads

from .ui_support import assert_csp_clean

MAPPED = 250
DAG_SOURCE = '''"""A DAG file for the UI tests."""
secret = "<not a secret>"
'''


def _dag(fileloc: Path) -> DAG:
    with DAG(
        "wide",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        params={"n": Param(3, minimum=1), "api_password": Param("hunter22")},
        tags=["team"],
        default_args={"owner": "ops"},
        doc_md="Fans out *wide*.",
    ) as dag:

        @task
        def numbers() -> list[int]:
            return list(range(MAPPED))

        @task
        def double(x: int) -> int:
            return 2 * x

        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        with TaskGroup("group"):
            doubled = double.expand(x=numbers())
        total(doubled)
    dag.fileloc = str(fileloc)
    return dag


@dataclass
class World:
    store: Store
    run_pks: dict[str, int]


def _ni(task_id: str) -> NewTaskInstance:
    return NewTaskInstance(task_id, "default_pool", 1, 1, 1, "PythonTaskOperator")


async def _world(store: Store, tmp_path: Path, runs: int = 2) -> World:
    fileloc = tmp_path / "dags" / "wide.py"  # the DAGs folder: <home>/dags
    fileloc.parent.mkdir(exist_ok=True)
    fileloc.write_text(DAG_SOURCE)
    dag = _dag(fileloc)
    text, digest = dumps(serialize_dag(dag))
    await ServiceStore(store).sync_dags(
        {"wide": (str(fileloc), "@daily")}, [], {"wide": (text, digest)}
    )
    pks: dict[str, int] = {}
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(runs):
        run_id = f"scheduled__2026-01-0{i + 1}T00:00:00+00:00"
        pk = await store.create_run(
            dag_id="wide",
            run_id=run_id,
            run_type="scheduled",
            logical_date=t0 + timedelta(days=i),
            params={"n": 3, "api_password": "hunter22"},
            task_instances=[_ni(t) for t in ("group.numbers", "group.double", "total")],
            data_interval=(t0 + timedelta(days=i), t0 + timedelta(days=i + 1)),
        )
        pks[run_id] = pk
        start = t0 + timedelta(days=i, minutes=1)
        batch = WriteBatch(
            expansions=[Expansion(pk, "group.double", MAPPED)],
            ti_updates=[
                TIUpdate(
                    pk,
                    "group.numbers",
                    -1,
                    TaskState.SUCCESS,
                    1,
                    start,
                    start,
                    start + timedelta(seconds=5),
                    5.0,
                ),
                *(
                    TIUpdate(
                        pk,
                        "group.double",
                        m,
                        TaskState.SUCCESS if m % 5 else TaskState.FAILED,
                        1,
                        start,
                        start + timedelta(seconds=6 + m % 7),
                        start + timedelta(seconds=10 + m % 7),
                        4.0,
                    )
                    for m in range(MAPPED)
                ),
            ],
        )
        await store.write(batch)
    return World(store, pks)


RUN1 = "scheduled__2026-01-01T00:00:00+00:00"
RUN2 = "scheduled__2026-01-02T00:00:00+00:00"


@pytest_asyncio.fixture
async def world(api_store: Store, tmp_path: Path) -> World:
    return await _world(api_store, tmp_path)


def _cells(html: str) -> list[str]:
    return re.findall(r"<td class=\"cell[^>]*>", html)


async def test_grid_draws_a_mapped_task_as_one_row_of_counted_bars(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/dags/wide")
    assert response.status_code == 200, response.text
    html = response.text
    assert 'id="grid"' in html
    # One row per task (and one for the group), never one per instance.
    assert html.count('data-task-row="group.double"') == 1
    assert 'data-group-id="group"' in html
    cells = _cells(html)
    assert len(cells) == 2 * 3  # 2 runs x 3 tasks
    mapped = [c for c in cells if 'data-task-id="group.double"' in c]
    assert all(f'data-total="{MAPPED}"' in c and "data-state" not in c for c in mapped)
    assert f'data-summary="success {MAPPED - MAPPED // 5}, failed {MAPPED // 5}"' in mapped[0]
    assert html.count('class="bar"') == 2
    assert html.count('class="seg" data-state="failed"') == 2
    numbers = [c for c in cells if 'data-task-id="group.numbers"' in c]
    assert all('data-state="success"' in c for c in numbers)
    # Cells open the instances table (mapped) or the TI page (unmapped).
    run = quote(RUN1, safe="")
    assert f'<a href="/dags/wide/runs/{run}/tasks/group.double">' in html
    assert f'<a href="/dags/wide/runs/{run}/tasks/group.numbers/-1">' in html
    # The admin sees the trigger link and the pause toggle; the page streams its runs.
    assert 'class="trigger button"' in html
    assert 'class="pause-toggle"' in html
    assert 'data-stream="/ui/stream/dags/wide?runs=' in html
    assert "<script>" not in html  # the CSP forbids inline scripts


async def test_grid_loads_older_runs_before_a_run(client: httpx.AsyncClient, world: World) -> None:
    first = await client.get("/dags/wide/grid", params={"limit": 1})
    assert first.status_code == 200
    assert f'data-run-id="{RUN2}"' in first.text
    assert f'data-run-id="{RUN1}"' not in first.text
    older = re.search(r'class="load-older" href="([^"]+)"', first.text)
    assert older is not None
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert f'data-run-id="{RUN1}"' in second.text
    assert f'data-run-id="{RUN2}"' not in second.text
    assert "load-older" not in second.text


async def test_pages_reject_unknown_query_parameters_and_unknown_things(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/dags/wide/grid", params={"limt": 3})
    assert response.status_code == 400
    assert "limt" in response.json()["detail"]
    response = await client.get("/dags/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]
    response = await client.get("/dags/wide/runs/nope")
    assert response.status_code == 404
    response = await client.get("/dags/wide/runs", params={"state": "sleeping"})
    assert response.status_code == 400
    assert "sleeping" in response.json()["detail"]


async def test_graph_runs_code_and_details_tabs(client: httpx.AsyncClient, world: World) -> None:
    graph = await client.get("/dags/wide/graph")
    assert graph.status_code == 200
    assert 'id="graph"' in graph.text
    assert len(re.findall(r'<g class="node[ "]', graph.text)) == 3
    assert 'class="group-box depth-0" data-group-id="group"' in graph.text
    assert f'<tspan class="counts">[{MAPPED}]</tspan>' in graph.text
    assert 'data-task-id="group.numbers" ' in graph.text
    runs = await client.get("/dags/wide/runs", params={"state": "running"})
    assert runs.status_code == 200
    assert runs.text.count("<tr data-run-id=") == 2
    code = await client.get("/dags/wide/code")
    assert code.status_code == 200
    assert "&lt;not a secret&gt;" in code.text  # escaped
    assert 'id="L2"' in code.text
    assert 'id="L3"' not in code.text
    details = await client.get("/dags/wide/details")
    assert details.status_code == 200
    assert "@daily" in details.text
    assert "Fans out" in details.text
    assert 'data-param="api_password"' in details.text
    assert "hunter22" not in details.text


async def test_run_page_shows_gantt_rows_and_mapped_counts(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(f"/dags/wide/runs/{quote(RUN1, safe='')}")
    assert response.status_code == 200, response.text
    html = response.text
    assert html.count('class="ti-row') == 3
    assert html.count('data-task-row="group.double"') == 1
    assert f"success {MAPPED - MAPPED // 5}, failed {MAPPED // 5}" in html
    assert 'class="gantt-bar"' in html
    assert 'class="span"' in html
    # The mapped task's bar: some instances failed, so the whole is failed (not blue).
    row = html[html.index('data-task-row="group.double"') :]
    assert 'class="span" data-state="failed"' in row[: row.index("</tr>")]
    assert 'class="clear-run"' in html
    assert 'class="mark-run-success"' in html
    assert "hunter22" not in html  # conf masked
    assert 'id="run-data"' in html


async def test_mapped_table_pages_by_keyset_sorted_and_filtered(
    client: httpx.AsyncClient, world: World
) -> None:
    base = f"/dags/wide/runs/{quote(RUN1, safe='')}/tasks/group.double"
    seen: list[int] = []
    url: str | None = base
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        page = [int(m) for m in re.findall(r'<tr data-map-index="(-?\d+)"', response.text)]
        assert len(page) <= 100
        seen.extend(page)
        found = re.search(r'href="([^"]+)" class="next"', response.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == list(range(MAPPED))
    failed = await client.get(base, params={"state": "failed"})
    rows = [int(m) for m in re.findall(r'<tr data-map-index="(\d+)"', failed.text)]
    assert rows == [m for m in range(MAPPED) if m % 5 == 0][:100]
    desc = await client.get(base, params={"order_by": "-map_index"})
    rows = [int(m) for m in re.findall(r'<tr data-map-index="(\d+)"', desc.text)]
    assert rows[:3] == [MAPPED - 1, MAPPED - 2, MAPPED - 3]
    assert (await client.get(base, params={"cursor": "garbage"})).status_code == 400
    # An unmapped task goes to its TI page.
    unmapped = await client.get(f"/dags/wide/runs/{quote(RUN1, safe='')}/tasks/group.numbers")
    assert unmapped.status_code == 303
    assert unmapped.headers["location"].endswith("/tasks/group.numbers/-1")


@pytest.mark.parametrize(
    "order",
    [
        "map_index",
        "-map_index",
        "duration",
        "-duration",
        "start_date",
        "-start_date",
        "state",
        "-state",
    ],
)
async def test_keyset_pages_cover_every_instance_once_in_order(world: World, order: str) -> None:
    pk = world.run_pks[RUN1]
    # The instances table pages through TaskInstanceReads. A quarter of the instances
    # never started: NULL start and duration sort last.
    await world.store.write(
        WriteBatch(
            ti_updates=[
                TIUpdate(pk, "group.double", m, TaskState.NONE, 0) for m in range(0, MAPPED, 4)
            ]
        )
    )
    reads = TaskInstanceReads(world.store)
    wanted = TaskInstanceFilter(dag_id="wide", run_id=RUN1, task_id="group.double")
    seen = []
    cursor = None
    while True:
        page = await reads.list(wanted, order_by=order, limit=37, cursor=cursor)
        assert page.total == MAPPED
        seen.extend(record.ti for record in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(ti.map_index for ti in seen) == list(range(MAPPED))
    name = order.lstrip("-")
    desc = order.startswith("-")
    values = [getattr(ti, name) for ti in seen]
    filled = [v for v in values if v is not None]
    unstarted = len(range(0, MAPPED, 4))
    assert len(filled) == (MAPPED - unstarted if name in ("start_date", "duration") else MAPPED)
    assert values == filled + [None] * (len(values) - len(filled))  # NULLs last
    keys = [(getattr(ti, name), ti.map_index) for ti in seen if getattr(ti, name) is not None]
    assert keys == sorted(keys, reverse=desc)


def test_graph_layout_layers_follow_dependencies() -> None:
    structure = {
        "tasks": [{"task_id": t, "operator": "X", "is_mapped": False} for t in "abcd"],
        "edges": [
            {"source": "a", "target": "c", "label": None},
            {"source": "b", "target": "d", "label": "yes"},
            {"source": "c", "target": "d", "label": None},
        ],
        "task_group": {"id": None, "children": [{"task_id": t} for t in "abcd"]},
    }
    shape = layout(structure)
    x = {n.task_id: n.x for n in shape.nodes}
    assert x["a"] == x["b"] < x["c"] < x["d"]
    assert [e.label for e in shape.edges if e.label] == ["yes"]


PAGES = [
    "/dags/wide",
    "/dags/wide/graph",
    "/dags/wide/runs",
    "/dags/wide/code",
    "/dags/wide/details",
    f"/dags/wide/runs/{quote(RUN1, safe='')}",
    f"/dags/wide/runs/{quote(RUN1, safe='')}/tasks/group.double",
]


async def test_every_page_keeps_the_csp(client: httpx.AsyncClient, world: World) -> None:
    for url in PAGES:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert_csp_clean(response.text)


async def test_a_viewer_sees_the_pages_without_admin_controls(
    viewer: httpx.AsyncClient, world: World
) -> None:
    for url in PAGES:
        response = await viewer.get(url)
        assert response.status_code == 200, url
        html = response.text
        for control in ('a class="trigger', "pause-toggle", "clear-run", "mark-run-", "note-form"):
            assert control not in html, (url, control)


async def test_pages_need_a_signed_in_user(
    tmp_path: Path, database_url: str, api_store: Store, world: World
) -> None:
    settings = Settings(
        home=tmp_path, database_url=database_url, api={"auth": "password", "secret_key": "k" * 40}
    )
    transport = httpx.ASGITransport(app=create_app(settings, store=api_store))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        for url in [*PAGES, f"/ui/stream/dags/wide?runs={RUN1}"]:
            response = await c.get(url)
            assert response.status_code in (303, 401), url


# -- live updates: a real server on loopback (the ASGI transport buffers responses) --


@pytest_asyncio.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    # A socket bound and listening before the server starts: connections wait in its
    # backlog until the server accepts them, so nothing polls for readiness.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await task


async def _next_cells(lines: AsyncIterator[str]) -> dict[str, object]:
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "cells":
            data: dict[str, object] = json.loads(line[5:])
            return data
    raise AssertionError("the stream ended without a cells event")


async def test_stream_sends_a_changed_cell_after_a_state_change(
    server: str, api_store: Store, tmp_path: Path
) -> None:
    world = await _world(api_store, tmp_path, runs=1)
    pk = world.run_pks[RUN1]
    url = f"{server}/ui/stream/dags/wide"
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream("GET", url, params={"runs": RUN1}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        first = await asyncio.wait_for(_next_cells(lines), 20)
        assert {c["task_id"] for c in first["cells"]} == {  # type: ignore[union-attr]
            "group.numbers",
            "group.double",
            "total",
        }
        assert first["runs"][0]["state"] == "running"  # type: ignore[index]
        now = datetime.now(UTC)
        await api_store.write(
            WriteBatch(ti_updates=[TIUpdate(pk, "total", -1, TaskState.RUNNING, 1, now, now)])
        )
        second = await asyncio.wait_for(_next_cells(lines), 20)
        # A new run of the DAG: the grid is told there is one newer than it shows.
        await api_store.create_run(
            dag_id="wide",
            run_id="manual__later",
            run_type="manual",
            logical_date=None,
            params={},
            task_instances=[_ni("total")],
        )
        third = await asyncio.wait_for(_next_cells(lines), 20)
    assert first["newer_runs"] == 0
    assert second["cells"] == [
        {"run_id": RUN1, "task_id": "total", "counts": {"running": 1}, "total": 1}
    ]
    assert second["runs"] == []
    assert third == {"runs": [], "cells": [], "newer_runs": 1}


async def test_stream_rejects_unknown_parameters(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/stream/dags/wide", params={"run": "x"})
    assert response.status_code == 400
    assert "run" in response.json()["detail"]


def test_a_mapped_tasks_overall_state() -> None:
    from airloop.api.ui.grid_model import overall_state

    assert overall_state({"success": 9, "running": 1}) == "running"
    assert overall_state({"success": 9, "failed": 1}) == "failed"
    assert overall_state({"success": 9, "skipped": 1}) == "success"
    assert overall_state({}) is None
