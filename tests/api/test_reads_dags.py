"""The DAG and run reads: the DAG list with its last runs, a DAG's details, structure
and source, the grid's counts, and runs, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from airloop.core.states import DagRunState, TaskState
from airloop.store.reads import Reads
from airloop.store.runs import Store

from .reads_support import T0, mapped_dag, mapped_run, register


async def test_the_dag_list_shows_each_dags_newest_runs_and_counts(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag("a"), mapped_dag("b", tags=["other"]), mapped_dag("c"))
    for day in range(12):
        await mapped_run(api_store, "a", day=day)
    await mapped_run(api_store, "b", day=0, run_state=DagRunState.FAILED)
    await mapped_run(api_store, "b", day=1, run_state=DagRunState.RUNNING)

    body = (await client.get("/api/v1/dags")).json()
    assert body["total"] == 3
    assert body["next_cursor"] is None
    by_id = {d["dag_id"]: d for d in body["items"]}
    assert list(by_id) == ["a", "b", "c"]
    a = by_id["a"]
    assert len(a["last_runs"]) == 10
    assert a["last_runs"][0]["logical_date"] == "2026-01-12T00:00:00+00:00"
    assert a["last_runs"][-1]["logical_date"] == "2026-01-03T00:00:00+00:00"
    assert a["tags"] == ["team"]
    assert a["owners"] == ["ops"]
    assert a["description"] == "doubles numbers"
    assert a["schedule"] == "@daily"
    assert a["is_paused"] is False
    assert a["next_run"] == "2026-01-13T00:00:00+00:00" or a["next_run"] > "2026-01-13"
    b = by_id["b"]
    assert (b["running_runs"], b["failed_runs"]) == (1, 1)
    assert [r["state"] for r in b["last_runs"]] == ["running", "failed"]
    assert by_id["c"]["last_runs"] == []
    assert by_id["c"]["next_run"] is not None


async def test_the_dag_list_filters_and_pages(client: httpx.AsyncClient, api_store: Store) -> None:
    await register(
        api_store, mapped_dag("alpha"), mapped_dag("beta", tags=["x", "y"]), mapped_dag("gamma")
    )
    await mapped_run(api_store, "alpha", run_state=DagRunState.FAILED)
    await mapped_run(api_store, "gamma", day=0, run_state=DagRunState.FAILED)
    await mapped_run(api_store, "gamma", day=1, run_state=DagRunState.SUCCESS)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/api/v1/dags{query}")
        assert response.status_code == 200, response.text
        return [d["dag_id"] for d in response.json()["items"]]

    assert await ids("?search=ET") == ["beta"]
    assert await ids("?tags=x&tags=y") == ["beta"]
    assert await ids("?tags=x&tags=team") == []
    assert await ids("?tags=team") == ["alpha", "gamma"]
    assert await ids("?last_state=failed") == ["alpha"]
    assert await ids("?last_state=success") == ["gamma"]
    assert await ids("?paused=false&active=true") == ["alpha", "beta", "gamma"]
    assert await ids("?paused=true") == []
    assert await ids("?limit=2") == ["alpha", "beta"]
    page = (await client.get("/api/v1/dags?limit=2&offset=2")).json()
    assert [d["dag_id"] for d in page["items"]] == ["gamma"]
    assert page["total"] == 3
    page = (await client.get("/api/v1/dags?tags=team&limit=1&offset=1")).json()
    assert [d["dag_id"] for d in page["items"]] == ["gamma"]
    assert page["total"] == 2


async def test_unknown_parameters_and_bad_values_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/dags?serach=a")
    assert response.status_code == 400
    assert "serach" in response.json()["detail"]
    assert (await client.get("/api/v1/dags?limit=1001")).status_code == 422
    assert (await client.get("/api/v1/dags?last_state=bogus")).status_code == 422


async def test_a_dags_details_structure_and_source(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    dag = mapped_dag("shape", catchup=True)
    fileloc = tmp_path / "dags" / "shape.py"  # the DAGs folder: <home>/dags
    fileloc.parent.mkdir()
    fileloc.write_text("def shape():\n    return 'the DAG file'\n")
    await register(api_store, dag, fileloc=str(fileloc))
    detail = (await client.get("/api/v1/dags/shape")).json()
    assert detail["catchup"] is True
    assert detail["timezone"] == "UTC"
    assert detail["start_date"] == "2026-01-01T00:00:00+00:00"
    assert detail["next_run"] == "2026-01-01T00:00:00+00:00"  # catchup: from the start
    assert detail["params"]["n"]["schema"]["minimum"] == 1
    assert detail["params"]["n"]["default"] == 3
    assert detail["params"]["token"]["default"] == "***"  # a sensitive name
    structure = (await client.get("/api/v1/dags/shape/structure")).json()
    assert [t["task_id"] for t in structure["tasks"]] == ["numbers", "group.double", "total"]
    assert {"source": "numbers", "target": "group.double", "label": None} in structure["edges"]
    source = (await client.get("/api/v1/dags/shape/source")).json()
    assert source["fileloc"] == str(fileloc)
    assert source["content"] == "def shape():\n    return 'the DAG file'\n"


async def test_source_outside_the_dags_folder_is_not_read(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("PASSWORD = 'hunter2'\n")
    (tmp_path / "dags").mkdir()
    link = tmp_path / "dags" / "link.py"
    link.symlink_to(secret)
    # Rows naming files elsewhere (crafted, or a symlink out of the folder): refused.
    await register(api_store, mapped_dag("out"), fileloc=str(secret))
    await register(api_store, mapped_dag("dots"), fileloc=str(tmp_path / "dags/../secret.py"))
    await register(api_store, mapped_dag("linked"), fileloc=str(link))
    for dag_id in ("out", "dots", "linked"):
        response = await client.get(f"/api/v1/dags/{dag_id}/source")
        assert response.status_code == 403, dag_id
        assert "outside the DAGs folder" in response.json()["detail"]
        assert "hunter2" not in response.text
        page = await client.get(f"/dags/{dag_id}/code")
        assert page.status_code == 200
        assert "outside the DAGs folder" in page.text
        assert "hunter2" not in page.text


async def test_unknown_dags_and_runs_are_404s_naming_them(client: httpx.AsyncClient) -> None:
    for path in ("/dags/nope", "/dags/nope/structure", "/dags/nope/grid", "/dags/nope/dagRuns"):
        response = await client.get(f"/api/v1{path}")
        assert response.status_code == 404, path
        assert response.json()["detail"] == "DAG 'nope' not found"


async def test_paused_and_unscheduled_dags_have_no_next_run(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    from airloop.store.service import ServiceStore

    await register(api_store, mapped_dag("paused"), mapped_dag("manual", schedule=None))
    await ServiceStore(api_store).set_paused("paused", True)
    items = (await client.get("/api/v1/dags")).json()["items"]
    assert [(d["dag_id"], d["next_run"]) for d in items] == [("manual", None), ("paused", None)]


async def test_runs_list_filters_orders_and_pages(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag())
    for day in range(5):
        await mapped_run(
            api_store, day=day, run_state=DagRunState.FAILED if day % 2 else DagRunState.SUCCESS
        )
    await mapped_run(api_store, day=9, run_type="manual", run_state=DagRunState.RUNNING)

    async def dates(query: str) -> list[str]:
        response = await client.get(f"/api/v1/dags/mapped/dagRuns{query}")
        assert response.status_code == 200, response.text
        return [r["logical_date"][:10] for r in response.json()["items"]]

    assert await dates("") == [
        "2026-01-10",
        "2026-01-05",
        "2026-01-04",
        "2026-01-03",
        "2026-01-02",
        "2026-01-01",
    ]
    assert await dates("?order_by=logical_date&limit=2&offset=1") == ["2026-01-02", "2026-01-03"]
    assert await dates("?state=failed") == ["2026-01-04", "2026-01-02"]
    assert await dates("?run_type=manual") == ["2026-01-10"]
    body = (await client.get("/api/v1/dags/mapped/dagRuns?limit=1")).json()
    assert body["total"] == 6
    run = body["items"][0]
    assert run["conf"] == {"n": 3, "token": "***"}
    assert run["state"] == "running"
    assert run["run_type"] == "manual"
    one = await client.get(f"/api/v1/dags/mapped/dagRuns/{run['run_id']}")
    assert one.json() == run
    response = await client.get("/api/v1/dags/mapped/dagRuns?order_by=colour")
    assert response.status_code == 400
    assert "colour" in response.json()["detail"]
    response = await client.get("/api/v1/dags/mapped/dagRuns/nope")
    assert response.status_code == 404
    assert response.json()["detail"] == "run 'nope' of DAG 'mapped' not found"


async def test_the_grid_counts_a_mapped_tasks_instances_by_state(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag())
    await mapped_run(api_store, day=0)
    pk = await mapped_run(
        api_store,
        day=1,
        states=[TaskState.SUCCESS, TaskState.FAILED, TaskState.SUCCESS, TaskState.RUNNING],
        run_state=DagRunState.RUNNING,
    )
    changed = await Reads(api_store).cells([pk], ["group.double"])
    assert [(c.task_id, c.counts, c.total) for c in changed] == [
        ("group.double", {"failed": 1, "running": 1, "success": 2}, 4)
    ]
    grid = (await client.get("/api/v1/dags/mapped/grid")).json()
    assert [r["logical_date"][:10] for r in grid["runs"]] == ["2026-01-01", "2026-01-02"]
    assert grid["tasks"] == [
        {
            "task_id": "numbers",
            "group_id": None,
            "is_mapped": False,
            "operator": "PythonTaskOperator",
        },
        {
            "task_id": "group.double",
            "group_id": "group",
            "is_mapped": True,
            "operator": "PythonTaskOperator",
        },
        {
            "task_id": "total",
            "group_id": None,
            "is_mapped": False,
            "operator": "PythonTaskOperator",
        },
    ]
    second = grid["runs"][1]["run_id"]
    cells = {(c["run_id"], c["task_id"]): c for c in grid["cells"]}
    assert len(cells) == 6
    double = cells[(second, "group.double")]
    assert double["counts"] == {"success": 2, "failed": 1, "running": 1}
    assert double["total"] == 4
    assert cells[(second, "total")]["counts"] == {"none": 1}
    older = (
        await client.get("/api/v1/dags/mapped/grid", params={"before": second, "limit": 5})
    ).json()
    assert [r["logical_date"][:10] for r in older["runs"]] == ["2026-01-01"]
    newest = (await client.get("/api/v1/dags/mapped/grid?limit=1")).json()
    assert [r["run_id"] for r in newest["runs"]] == [second]
    assert (await client.get("/api/v1/dags/mapped/grid?before=nope")).status_code == 404


def test_times_are_iso_with_an_offset() -> None:
    from airloop.api.models import DagRunBrief

    brief = DagRunBrief(
        run_id="r",
        state="success",
        run_type="manual",
        logical_date=datetime(2026, 12, 2, 4, 30, tzinfo=UTC),
        start_date=None,
        end_date=None,
    )
    assert '"2026-12-02T04:30:00+00:00"' in brief.model_dump_json()
    assert T0.isoformat() == "2026-01-01T00:00:00+00:00"
