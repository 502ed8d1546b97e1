"""Task instance reads: keyset pages that match the offset pages in every order, the
filters, ``~`` for every DAG and run, one instance, its tries, XComs and rendered
fields, and 404s naming what is missing; on every backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from airloop.core.masking import mask_secret
from airloop.core.states import DagRunState, TaskState
from airloop.store.records import RenderedRow, TIUpdate, WriteBatch, XComRow
from airloop.store.runs import Store

from .reads_support import T0, mapped_dag, mapped_run, register, write_log

RUN = "scheduled__2026-01-01T00:00:00+00:00"
TIS = f"/api/v1/dags/mapped/dagRuns/{RUN}/taskInstances"

_STATES = [TaskState.SUCCESS, TaskState.FAILED, TaskState.RUNNING, TaskState.SKIPPED]


async def _big_run(store: Store, n: int = 23) -> int:
    """A run whose ``double`` has ``n`` instances with repeated states, durations and
    start dates, some of them NULL (ties and NULLs are where keyset pages go wrong)."""
    pk = await mapped_run(store, states=[TaskState.SUCCESS] * n, run_state=DagRunState.RUNNING)
    batch = WriteBatch()
    for i in range(n):
        start = None if i % 5 == 0 else T0 + timedelta(minutes=i % 4)
        batch.ti_updates.append(
            TIUpdate(
                pk,
                "group.double",
                i,
                _STATES[i % 4],
                1,
                start_date=start,
                duration=None if i % 7 == 0 else (i % 3) / 3 + 0.1234567,  # inexact floats
            )
        )
    await store.write(batch)
    return pk


def _key(ti: dict[str, Any]) -> tuple[str, str, str, int]:
    return ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]


async def _walk(client: httpx.AsyncClient, url: str, params: dict[str, Any]) -> list[Any]:
    """Every page through the cursor."""
    seen: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(_key(t) for t in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize(
    "order_by",
    [
        None,
        "map_index",
        "-map_index",
        "state",
        "start_date",
        "-start_date",
        "duration",
        "-duration",
    ],
)
async def test_cursor_pages_are_the_whole_list_in_order(
    client: httpx.AsyncClient, api_store: Store, order_by: str | None
) -> None:
    await register(api_store, mapped_dag())
    await _big_run(api_store)
    params = {} if order_by is None else {"order_by": order_by}
    whole = (await client.get(TIS, params={**params, "limit": 1000})).json()
    assert whole["total"] == 25
    assert whole["next_cursor"] is None
    everything = [_key(t) for t in whole["items"]]
    assert len(set(everything)) == 25
    assert await _walk(client, TIS, {**params, "limit": 4}) == everything
    by_offset = (await client.get(TIS, params={**params, "limit": 4, "offset": 8})).json()
    assert [_key(t) for t in by_offset["items"]] == everything[8:12]
    items = whole["items"]
    if order_by in ("start_date", "-start_date", "duration", "-duration"):
        column = order_by.lstrip("-")
        values = [t[column] for t in items]
        filled = [v for v in values if v is not None]
        assert values == filled + [None] * (len(values) - len(filled))  # NULLs last
        assert filled == sorted(filled, reverse=order_by.startswith("-"))
    if order_by == "-map_index":
        assert [t["map_index"] for t in items[:3]] == [22, 21, 20]


async def test_filters_and_every_run_with_tilde(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag(), mapped_dag("other"))
    await _big_run(api_store)
    await mapped_run(api_store, day=1)
    await mapped_run(api_store, "other", day=0)

    async def count(url: str, **params: Any) -> int:
        response = await client.get(url, params=params)
        assert response.status_code == 200, response.text
        total: int = response.json()["total"]
        assert total == len(response.json()["items"])
        return total

    assert await count(TIS, task_id="group.double") == 23
    assert await count(TIS, task_id="group.double", state="failed") == 6
    assert await count(TIS, map_index=-1) == 2
    assert await count(TIS, map_index=3, task_id="group.double") == 1
    assert await count(TIS, start_date_gte="2026-01-01T00:02:00+00:00") == 9 + 1  # and numbers
    assert (
        await count(
            TIS,
            start_date_gte="2026-01-01T00:01:00+00:00",
            start_date_lte="2026-01-01T00:01:00+00:00",
        )
        == 5
    )
    assert await count("/api/v1/dags/mapped/dagRuns/~/taskInstances") == 25 + 5
    assert await count("/api/v1/dags/~/dagRuns/~/taskInstances") == 25 + 5 + 5
    assert await count("/api/v1/dags/~/dagRuns/~/taskInstances", task_id="numbers") == 3
    everything = await _walk(client, "/api/v1/dags/~/dagRuns/~/taskInstances", {"limit": 7})
    assert len(set(everything)) == 35


async def test_bad_list_requests(client: httpx.AsyncClient, api_store: Store) -> None:
    await register(api_store, mapped_dag())
    await mapped_run(api_store)

    async def refused(code: int, **params: Any) -> str:
        response = await client.get(TIS, params=params)
        assert response.status_code == code, response.text
        detail = response.json()["detail"]
        return detail if isinstance(detail, str) else str(detail)

    assert "colour" in await refused(400, colour="red")
    assert "order_by" in await refused(400, order_by="priority")
    assert "cursor" in await refused(400, cursor="not-a-cursor")
    other = (await client.get(TIS, params={"limit": 1, "order_by": "state"})).json()
    assert "cursor" in await refused(400, cursor=other["next_cursor"])  # another order's
    assert "offset or cursor" in await refused(400, cursor=other["next_cursor"], offset=2)
    assert "time zone" in await refused(400, start_date_gte="2026-01-01T00:00:00")
    await refused(422, state="sleeping")
    response = await client.get("/api/v1/dags/mapped/dagRuns/nope/taskInstances")
    assert response.json()["detail"] == "run 'nope' of DAG 'mapped' not found"
    response = await client.get("/api/v1/dags/nope/dagRuns/~/taskInstances")
    assert response.json()["detail"] == "DAG 'nope' not found"


async def test_one_instance_its_tries_xcoms_and_rendered_fields(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    await register(api_store, mapped_dag())
    pk = await mapped_run(api_store)
    mask_secret("hunter2-topsecret")
    await api_store.write(
        WriteBatch(
            ti_updates=[TIUpdate(pk, "group.double", 1, TaskState.SUCCESS, 2)],
            xcoms=[
                XComRow(pk, "group.double", 1, "return_value", "4"),
                XComRow(pk, "group.double", 1, "api_password", '"hunter2"'),
                XComRow(pk, "group.double", 1, "said", '"the key is hunter2-topsecret"'),
            ],
            rendered=[
                RenderedRow(pk, "group.double", 1, 1, '{"op_args": [1]}'),
                RenderedRow(pk, "group.double", 1, 2, '{"op_args": [2], "password": "pw"}'),
            ],
        )
    )
    await write_log(api_store, tmp_path / "logs", pk, "group.double", 1, 2, "second try\n")

    ti = (await client.get(f"{TIS}/group.double/1")).json()
    assert (ti["task_id"], ti["map_index"], ti["state"], ti["try_number"]) == (
        "group.double",
        1,
        "success",
        2,
    )
    assert ti["dag_id"] == "mapped"
    assert ti["run_id"] == RUN
    numbers = (await client.get(f"{TIS}/numbers")).json()
    assert numbers["map_index"] == -1
    assert numbers["duration"] == 1.0
    tries = (await client.get(f"{TIS}/group.double/tries", params={"map_index": 1})).json()
    assert tries == [
        {"try_number": 1, "log_size": None, "path_exists": False},
        {"try_number": 2, "log_size": len("second try\n"), "path_exists": True},
    ]
    xcoms = (await client.get(f"{TIS}/group.double/xcomEntries", params={"map_index": 1})).json()
    assert xcoms == [
        {"key": "api_password", "value": "***", "size": len('"hunter2"')},
        {"key": "return_value", "value": 4, "size": 1},
        {"key": "said", "value": "the key is ***", "size": len('"the key is hunter2-topsecret"')},
    ]
    url = f"{TIS}/group.double/renderedFields"
    latest = (await client.get(url, params={"map_index": 1})).json()
    assert latest == {"try_number": 2, "fields": {"op_args": [2], "password": "***"}}
    first = (await client.get(url, params={"map_index": 1, "try_number": 1})).json()
    assert first == {"try_number": 1, "fields": {"op_args": [1]}}
    missing = await client.get(url, params={"map_index": 1, "try_number": 3})
    assert missing.status_code == 404
    assert "try 3" in missing.json()["detail"]


async def test_missing_instances_are_404s_naming_them(
    client: httpx.AsyncClient, api_store: Store
) -> None:
    await register(api_store, mapped_dag())
    await mapped_run(api_store)
    for path, detail in [
        (f"{TIS}/nope", f"task 'nope' in run {RUN!r} of DAG 'mapped' not found"),
        (
            f"{TIS}/group.double/7",
            f"task 'group.double' map index 7 in run {RUN!r} of DAG 'mapped' not found",
        ),
        (f"{TIS}/nope/tries", f"task 'nope' in run {RUN!r} of DAG 'mapped' not found"),
        (
            "/api/v1/dags/mapped/dagRuns/r/taskInstances/numbers",
            "run 'r' of DAG 'mapped' not found",
        ),
        ("/api/v1/dags/x/dagRuns/r/taskInstances/numbers/xcomEntries", "DAG 'x' not found"),
    ]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == detail
