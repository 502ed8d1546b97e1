"""HttpHook against a real aiohttp server on loopback: the connection's URL, auth and
headers, retries of idempotent calls only (Retry-After honoured), error messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.connections import Connection, InvalidConnection
from airloop.engine.engine import Engine
from airloop.exceptions import AirloopError
from airloop.hooks import HttpError, HttpHook, HttpResponse
from airloop.hooks.http import base_url_of, join_url, retry_after_seconds
from airloop.runtime import BlockingOnLoopError
from airloop.settings import Settings

from .conftest import LocalHttp, free_port


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://example.com:8080", "http://example.com:8080"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://example.com/https", "https://example.com"),
        ('{"conn_type": "http", "host": "https://x.example.com"}', "https://x.example.com"),
        (
            '{"conn_type": "http", "host": "x.example.com", "schema": "https"}',
            "https://x.example.com",
        ),
    ],
)
def test_base_url_from_the_connection(uri: str, expected: str) -> None:
    assert base_url_of(Connection.parse("c", uri)) == expected


def test_url_join_has_one_slash() -> None:
    assert join_url("http://h", "a/b") == "http://h/a/b"
    assert join_url("http://h/", "/a") == "http://h/a"
    assert join_url("http://h/v1", None) == "http://h/v1"
    assert join_url("http://h", "https://other/x") == "https://other/x"


def test_retry_after_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds(None) is None


async def test_get_sends_auth_headers_and_query(
    http_server: LocalHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": http_server.server.port,
        "login": "user",
        "password": "p@ss",
        "extra": {"X-Api-Key": "secret", "timeout": 10},
    }
    monkeypatch.setenv("AIRLOOP_CONN_API", json.dumps(conn))
    hook = HttpHook("GET", http_conn_id="api")
    response = await hook.run("echo/x", data={"q": "1"}, headers={"X-Extra": "yes"})
    seen = response.json()
    assert response.status_code == 200
    assert seen["path"] == "/echo/x"
    assert seen["query"] == {"q": "1"}
    assert seen["headers"]["X-Api-Key"] == "secret"
    assert seen["headers"]["X-Extra"] == "yes"
    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "timeout" not in seen["headers"]


async def test_post_sends_json_body(http_server: LocalHttp) -> None:
    response = await HttpHook("POST", "http_test").run("echo", json={"a": 1})
    assert json.loads(response.json()["body"]) == {"a": 1}


async def test_get_is_retried_on_503_then_succeeds(http_server: LocalHttp) -> None:
    hook = HttpHook("GET", "http_test", retry_delay=0)
    response = await hook.run("flaky")
    assert response.text == "done after 3 tries"
    assert http_server.state.hits["flaky GET"] == 3


async def test_post_is_not_retried(http_server: LocalHttp) -> None:
    hook = HttpHook("POST", "http_test", retry_delay=0)
    with pytest.raises(HttpError) as raised:
        await hook.run("flaky", json={"x": 1})
    assert http_server.state.hits["flaky POST"] == 1
    assert raised.value.status == 503
    assert "HTTP 503" in str(raised.value)
    assert "busy, come back later" in str(raised.value)


async def test_retries_give_up_after_the_limit(http_server: LocalHttp) -> None:
    http_server.state.failures_before_success = 10
    hook = HttpHook("PUT", "http_test", retry_limit=2, retry_delay=0)
    with pytest.raises(HttpError, match="HTTP 503"):
        await hook.run("flaky")
    assert http_server.state.hits["flaky PUT"] == 3


async def test_a_long_retry_after_fails_instead_of_waiting(http_server: LocalHttp) -> None:
    http_server.state.retry_after = "3600"
    hook = HttpHook("GET", "http_test", max_retry_delay=5)
    with pytest.raises(HttpError, match="Retry-After 3600s is longer than max_retry_delay 5s"):
        await hook.run("flaky")
    assert http_server.state.hits["flaky GET"] == 1


async def test_error_shows_status_and_the_start_of_the_body(http_server: LocalHttp) -> None:
    with pytest.raises(HttpError) as raised:
        await HttpHook("GET", "http_test").run("error")
    message = str(raised.value)
    assert message.startswith(f"GET {http_server.url}/error failed: HTTP 400 Bad Request: ")
    assert "field 'name' is required" in message
    assert "THE-END" not in message
    assert message.endswith("...")
    assert http_server.state.hits["error"] == 1  # a 4xx is never retried


async def test_check_response_false_returns_the_error_answer(http_server: LocalHttp) -> None:
    response = await HttpHook("GET", "http_test").run(
        "error", extra_options={"check_response": False}
    )
    assert response.status_code == 400
    assert not response.ok


async def test_refused_connection_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOOP_CONN_DOWN", f"http://127.0.0.1:{free_port()}")
    hook = HttpHook("POST", "down", retry_limit=2, retry_delay=0)
    with pytest.raises(HttpError, match=r"cannot connect .* after 3 tries"):
        await hook.run("anything")
    assert hook.attempts == 3  # nothing was sent: even a POST may try again


async def test_bad_input_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AirloopError, match="unknown method 'FETCH'"):
        HttpHook("FETCH")
    with pytest.raises(AirloopError, match="extra_options 'proxies' is not supported"):
        await HttpHook("GET", "http_test").run("x", extra_options={"proxies": {}})
    with pytest.raises(AirloopError, match="timeout must be a positive number of seconds"):
        await HttpHook("GET", "http_test").run("x", extra_options={"timeout": "soon"})
    with pytest.raises(AirloopError, match="verify must be true or false, got 'maybe'"):
        await HttpHook("GET", "http_test").run("x", extra_options={"verify": "maybe"})
    monkeypatch.setenv("AIRLOOP_CONN_BADX", '{"host": "h", "extra": {"stream": true}}')
    with pytest.raises(InvalidConnection, match="extra 'stream' is not supported"):
        await HttpHook("GET", "badx").run("x")


async def test_run_blocks_in_a_sync_task_and_refuses_on_the_loop(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    with DAG("sync_hook") as dag:

        @task
        def fetch() -> str:
            response: HttpResponse = HttpHook("GET", "http_test").run("flaky")
            return response.text

        fetch()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag)
        assert result.state is DagRunState.SUCCESS, result.failed
        rows = await engine.store.xcom_values(result.run_pk)
    assert json.loads(rows[0].value) == "done after 3 tries"

    def sync_on_the_loop() -> Any:
        return HttpHook("GET", "http_test").run("echo")

    with pytest.raises(BlockingOnLoopError, match=r"HttpHook.run\(\) was called from sync code"):
        sync_on_the_loop()
    assert http_server.state.hits.get("echo") is None
