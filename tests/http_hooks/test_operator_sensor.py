"""HttpOperator and HttpSensor in real DAG runs against a local aiohttp server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState
from airloop.engine.engine import Engine
from airloop.exceptions import DagDefinitionError
from airloop.hooks.http import HttpResponse, HttpSessions
from airloop.operators import HttpOperator, SimpleHttpOperator
from airloop.sensors import HttpSensor
from airloop.settings import Settings

from .conftest import LocalHttp


async def _xcoms(engine: Engine, run_pk: int) -> dict[str, Any]:
    rows = await engine.store.xcom_values(run_pk)
    return {r.task_id: json.loads(r.value) for r in rows if r.key == "return_value"}


def _next_page(response: HttpResponse) -> dict[str, Any] | None:
    following = response.json()["next"]
    return None if following is None else {"data": {"page": following}}


async def test_pagination_collects_every_page_and_filters_with_context(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    def every_item(responses: list[HttpResponse], ti: Any) -> dict[str, Any]:
        return {
            "task": ti.task_id,
            "items": [item for r in responses for item in r.json()["items"]],
        }

    with DAG("paginate") as dag:
        HttpOperator(
            task_id="fetch",
            http_conn_id="http_test",
            method="GET",
            endpoint="items",
            data={"page": 1},
            headers={"X-Run": "{{ run_id }}"},
            pagination_function=_next_page,
            response_check=lambda responses: len(responses) == 3,
            response_filter=every_item,
        )
        HttpOperator(task_id="plain", http_conn_id="http_test", method="GET", endpoint="items")

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="r1")
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await _xcoms(engine, result.run_pk)
    assert values["fetch"] == {
        "task": "fetch",
        "items": ["item1a", "item1b", "item2a", "item2b", "item3a", "item3b"],
    }
    # Without a filter: the response text.
    assert json.loads(values["plain"])["items"] == ["item1a", "item1b"]
    pages = [r["page"] for r in http_server.state.requests if r["headers"].get("X-Run") == "r1"]
    assert pages == [1, 2, 3]  # the templated header went with every page


async def test_pagination_of_a_single_page_still_hands_over_a_list(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    # Airflow: with a pagination_function, response_check and response_filter always
    # get the list of responses, even when the first page is the last.
    with DAG("paginate_once") as dag:
        HttpOperator(
            task_id="fetch",
            http_conn_id="http_test",
            method="GET",
            endpoint="items",
            data={"page": 1},
            pagination_function=lambda response: None,
            response_check=lambda responses: isinstance(responses, list),
            response_filter=lambda responses: [r.json()["items"] for r in responses],
        )
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        values = await _xcoms(engine, result.run_pk)
    assert values["fetch"] == [["item1a", "item1b"]]


async def test_operator_retries_a_503_get_then_succeeds(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    with DAG("flaky_get") as dag:
        HttpOperator(task_id="get", http_conn_id="http_test", method="GET", endpoint="flaky")
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        assert (await _xcoms(engine, result.run_pk))["get"] == "done after 3 tries"
    assert http_server.state.hits["flaky GET"] == 3


async def test_operator_post_is_not_retried_and_the_error_says_why(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    with DAG("flaky_post") as dag:
        HttpOperator(task_id="post", http_conn_id="http_test", endpoint="flaky", data="x=1")
        HttpOperator(task_id="bad", http_conn_id="http_test", method="GET", endpoint="error")
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    errors = dict(result.failed)
    assert http_server.state.hits["flaky POST"] == 1
    assert "HTTP 503" in errors["post"]
    assert "busy, come back later" in errors["post"]
    assert "HTTP 400 Bad Request: field 'name' is required" in errors["bad"]


async def test_response_check_false_fails_the_task(http_server: LocalHttp, tmp_path: Path) -> None:
    with DAG("checked") as dag:
        HttpOperator(
            task_id="check",
            http_conn_id="http_test",
            method="GET",
            endpoint="items",
            response_check=lambda response: "missing" in response.json(),
        )
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
    assert result.state is DagRunState.FAILED
    assert "response check returned False" in dict(result.failed)["check"]


async def test_tasks_share_one_session_per_connection_closed_with_the_engine(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    with DAG("shared") as dag:
        for n in range(3):
            HttpOperator(task_id=f"get{n}", http_conn_id="http_test", method="GET", endpoint="echo")
    # Sessions are shared on the engine's loop: the async executor's.
    async with Engine(Settings(home=tmp_path, use_async=True)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        assert engine.resources is not None
        registry = await engine.resources.get("http", HttpSessions.create)
        sessions = dict(registry.sessions)
    assert list(sessions) == ["http_test"]
    assert sessions["http_test"].closed
    assert http_server.state.hits["echo"] == 3


async def test_sensor_is_true_after_the_404s(http_server: LocalHttp, tmp_path: Path) -> None:
    http_server.state.failures_before_success = 3
    with DAG("sensing") as dag:
        HttpSensor(
            task_id="wait",
            http_conn_id="http_test",
            endpoint="ready",
            poke_interval=0,
            response_check=lambda response, task: (
                response.json()["status"] == "ready" and task.task_id == "wait"
            ),
        )
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
    assert result.state is DagRunState.SUCCESS, result.failed
    assert http_server.state.hits["ready"] == 4


async def test_sensor_fails_on_other_errors(http_server: LocalHttp, tmp_path: Path) -> None:
    with DAG("forbidden") as dag:
        HttpSensor(task_id="wait", http_conn_id="http_test", endpoint="forbidden", poke_interval=0)
        HttpSensor(
            task_id="allowed",
            http_conn_id="http_test",
            endpoint="forbidden",
            poke_interval=0,
            timeout=0,
            soft_fail=True,
            response_error_codes_allowlist=["403"],
        )
    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        states = {r.task_id: r.state for r in await engine.store.task_instances(result.run_pk)}
    assert "HTTP 403 Forbidden: no entry" in dict(result.failed)["wait"]
    assert states == {"wait": "failed", "allowed": "skipped"}


def test_definition_errors_are_clear() -> None:
    with DAG("bad"):
        with pytest.raises(DagDefinitionError, match="task 'a': unknown method 'FETCH'"):
            HttpOperator(task_id="a", method="FETCH")
        with pytest.raises(DagDefinitionError, match="unknown extra_options key 'verfy'"):
            HttpOperator(task_id="b", extra_options={"verfy": False})
        with pytest.raises(DagDefinitionError, match="auth_type"):
            HttpOperator(task_id="c", auth_type=object)
        with pytest.raises(DagDefinitionError, match="request_kwargs 'files'"):
            HttpSensor(task_id="d", endpoint="x", request_kwargs={"files": {}})
        assert SimpleHttpOperator is HttpOperator
        op = HttpOperator(task_id="e", deferrable=False, tcp_keep_alive=True)
        assert op.method == "POST"


DAG_FILE = """
from airloop import DAG
from airloop.operators import HttpOperator
from airloop.sensors import HttpSensor

with DAG("in_a_worker") as dag:
    ready = HttpSensor(
        task_id="ready", http_conn_id="http_test", endpoint="ready", poke_interval=0,
        executor="process",
    )
    get = HttpOperator(
        task_id="get", http_conn_id="http_test", method="GET", endpoint="flaky",
        response_filter=lambda response, ti: f"{ti.task_id}: {response.text}",
        executor="process",
    )
    ready >> get
"""


async def test_operator_and_sensor_in_a_worker_process(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    from airloop.dagbag.loader import load_dag_file

    path = tmp_path / "dags" / "in_a_worker.py"
    path.parent.mkdir()
    path.write_text(DAG_FILE)
    dag = load_dag_file(path).dags["in_a_worker"]
    settings = Settings(home=tmp_path / "home", process_workers=1)
    async with Engine(settings) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        assert (await _xcoms(engine, result.run_pk))["get"] == "get: done after 3 tries"
    assert http_server.state.hits["ready"] == 3
