"""Log reads from real files: the tail from a line start, byte ranges that end at line
ends, the masked download, server-sent events while a try runs, 404s; on every backend
(the try's file is found through its task_log row)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from airloop.api.log_files import read_range, read_tail
from airloop.core.masking import mask_secret
from airloop.core.states import DagRunState, TaskState
from airloop.store.records import TIUpdate, WriteBatch
from airloop.store.runs import Store

from .reads_support import mapped_dag, mapped_run, register, write_log

RUN = "scheduled__2026-01-01T00:00:00+00:00"
LOGS = f"/api/v1/dags/mapped/dagRuns/{RUN}/taskInstances/numbers/logs"
SECRET = "correct-horse-battery-staple"


def _lines(n: int) -> str:
    return "".join(f"line {i:05d} of the log\n" for i in range(n))  # 23 bytes a line


async def _run_with_log(store: Store, folder: Path, text: str) -> int:
    await register(store, mapped_dag())
    pk = await mapped_run(store)
    await write_log(store, folder, pk, "numbers", -1, 1, text)
    return pk


async def test_the_tail_starts_at_a_line_start(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    text = _lines(5000)  # 115,000 bytes
    await _run_with_log(api_store, tmp_path / "logs", text)
    body = (await client.get(f"{LOGS}/1")).json()
    assert body["size"] == len(text)
    assert body["next_offset"] == len(text)
    assert body["running"] is False
    assert body["content"].startswith("line ")
    assert body["content"].endswith("line 04999 of the log\n")
    assert len(body["content"]) <= 65536
    assert text[body["offset"] :] == body["content"]
    small = (await client.get(f"{LOGS}/1", params={"tail": 50})).json()
    assert small["content"] == "line 04998 of the log\nline 04999 of the log\n"
    whole = (await client.get(f"{LOGS}/1", params={"tail": 10**6})).json()
    assert whole["offset"] == 0
    assert whole["content"] == text


async def test_ranges_end_at_line_ends_and_follow_on(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    text = _lines(100) + "last line without an end"
    await _run_with_log(api_store, tmp_path / "logs", text)
    got = ""
    offset = 0
    while True:
        body = (await client.get(f"{LOGS}/1", params={"offset": offset, "limit": 100})).json()
        assert body["offset"] == offset
        if body["next_offset"] == offset:
            break
        assert body["content"].endswith("\n") or body["next_offset"] == len(text)
        got += body["content"]
        offset = body["next_offset"]
    assert got == text
    past = (await client.get(f"{LOGS}/1", params={"offset": 10**9})).json()
    assert past["content"] == ""
    assert past["next_offset"] == len(text)


async def test_secrets_are_masked_in_every_read(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    mask_secret(SECRET)
    text = _lines(3) + f"connecting with {SECRET}\n" + _lines(3)
    await _run_with_log(api_store, tmp_path / "logs", text)
    body = (await client.get(f"{LOGS}/1")).json()
    assert SECRET not in body["content"]
    assert "connecting with ***\n" in body["content"]
    ranged = (await client.get(f"{LOGS}/1", params={"offset": 0, "limit": 90})).json()
    assert SECRET not in ranged["content"]
    download = await client.get(f"{LOGS}/1", params={"download": "true"})
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert download.text == text.replace(SECRET, "***")


async def test_a_large_download_comes_whole(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    text = _lines(150_000)  # 3.4 MB: several chunks
    await _run_with_log(api_store, tmp_path / "logs", text)
    download = await client.get(f"{LOGS}/1", params={"download": "true"})
    assert download.text == text


async def test_missing_logs_and_bad_requests(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "numbers.-1.1.log"
    await _run_with_log(api_store, tmp_path / "logs", "x\n")
    response = await client.get(f"{LOGS}/2")
    assert response.status_code == 404
    assert response.json()["detail"] == f"log of try 2 of task 'numbers' in run {RUN!r} not found"
    path.unlink()
    response = await client.get(f"{LOGS}/1")
    assert response.status_code == 404
    assert str(path) in response.json()["detail"]
    response = await client.get(f"{LOGS}/1", params={"tail": 5, "offset": 0})
    assert response.status_code == 400
    response = await client.get(f"{LOGS}/1", params={"limit": 5})
    assert response.status_code == 400
    assert "offset" in response.json()["detail"]
    response = await client.get(f"{LOGS}/1", params={"download": "true", "tail": 5})
    assert response.status_code == 400
    response = await client.get(f"{LOGS}/1", params={"taill": 5})
    assert response.status_code == 400
    assert "taill" in response.json()["detail"]
    response = await client.get(f"/api/v1/dags/mapped/dagRuns/{RUN}/taskInstances/nope/logs/1")
    assert response.status_code == 404


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_following_a_running_try_ends_when_it_ends(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    await register(api_store, mapped_dag())
    pk = await mapped_run(api_store, states=[TaskState.RUNNING], run_state=DagRunState.RUNNING)
    await api_store.write(
        WriteBatch(ti_updates=[TIUpdate(pk, "group.double", 0, TaskState.RUNNING, 1)])
    )
    path = await write_log(api_store, tmp_path / "logs", pk, "group.double", 0, 1, "started\npart")
    url = f"/api/v1/dags/mapped/dagRuns/{RUN}/taskInstances/group.double/logs/1"
    running = (await client.get(url, params={"map_index": 0})).json()
    assert running["running"] is True
    assert running["content"] == "started\n"  # the unfinished line waits for its end

    async def finish() -> None:
        await asyncio.sleep(0.2)
        with path.open("a") as f:
            f.write("ial line\nfinished\n")
        await asyncio.sleep(0.7)
        await api_store.write(
            WriteBatch(ti_updates=[TIUpdate(pk, "group.double", 0, TaskState.SUCCESS, 1)])
        )

    writer = asyncio.create_task(finish())
    stream = await client.get(f"{url}/stream", params={"map_index": 0})
    await writer
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = _events(stream.text)
    assert events[-1] == ("end", {"next_offset": len("started\npartial line\nfinished\n")})
    content = "".join(data["content"] for name, data in events if name == "log")
    assert content == "started\npartial line\nfinished\n"


async def test_following_an_ended_try_sends_it_and_ends(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    await _run_with_log(api_store, tmp_path / "logs", "one\ntwo\n")
    stream = await client.get(f"{LOGS}/1/stream", params={"offset": 4})
    assert _events(stream.text) == [
        ("log", {"content": "two\n", "next_offset": 8}),
        ("end", {"next_offset": 8}),
    ]


def test_a_50_mb_log_opens_by_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    line = "x" * 99 + "\n"
    with path.open("w") as f:
        for _ in range(50):
            f.write(line * 10_000)  # 1 MB
    piece = read_tail(str(path), 65536)
    assert piece.size == 50_000_000
    assert piece.next_offset == piece.size
    assert piece.offset % 100 == 0
    assert len(piece.content) <= 65536
    assert piece.content == line * (len(piece.content) // 100)
    middle = read_range(str(path), 25_000_050, 1000)
    assert middle.offset == 25_000_050
    assert middle.next_offset == 25_001_000


def test_a_line_longer_than_the_piece_is_cut_at_a_character(tmp_path: Path) -> None:
    path = tmp_path / "wide.log"
    path.write_text("é" * 100 + "\n", encoding="utf-8")  # 2 bytes a character
    piece = read_range(str(path), 0, 51)
    assert piece.content == "é" * 25
    assert piece.next_offset == 50


async def test_a_log_path_outside_the_logs_folder_is_not_read(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    # A task_log row naming a file elsewhere (a crafted row): refused, never read.
    await _run_with_log(api_store, tmp_path / "elsewhere", f"{SECRET}\n")
    for query in ({}, {"download": "true"}, {"offset": 0}):
        response = await client.get(f"{LOGS}/1", params=query)
        assert response.status_code == 403, query
        assert "outside the logs folder" in response.json()["detail"]
        assert SECRET not in response.text
    assert (await client.get(f"{LOGS}/1/stream")).status_code == 403
    tries = (await client.get(LOGS.removesuffix("/logs") + "/tries")).json()
    assert tries == [{"try_number": 1, "log_size": None, "path_exists": False}]


async def test_a_symlink_out_of_the_logs_folder_is_not_followed(
    client: httpx.AsyncClient, api_store: Store, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text(f"{SECRET}\n")
    link = tmp_path / "logs" / "numbers.-1.1.log"
    await _run_with_log(api_store, tmp_path / "logs", "replaced by a link\n")
    link.unlink()
    link.symlink_to(outside)
    response = await client.get(f"{LOGS}/1")
    assert response.status_code == 403
    assert SECRET not in response.text
