"""XCom is JSON: a dict key that JSON would turn into a string is an error, not a surprise."""

from __future__ import annotations

from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import XComError
from airloop.executors.runner import encode_xcom

from .support import ti_rows, xcom_map


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({1: "a"}, "key 1 (int) at the top level"),
        ({"ok": [{"x": 1}, {2.5: "b"}]}, "key 2.5 (float) at ['ok'][1]"),
        ({"a": {None: 1}}, "key None (NoneType) at ['a']"),
        ([{True: 1}], "key True (bool) at [0]"),
        (({"t": ({7: 0},)}), "key 7 (int) at ['t'][0]"),
    ],
)
def test_non_string_keys_are_rejected_naming_task_and_key(value: Any, where: str) -> None:
    with pytest.raises(XComError) as info:
        encode_xcom("producer", value, 1 << 20)
    message = str(info.value)
    assert message.startswith("task 'producer' returned a dict with the non-string ")
    assert where in message
    assert "\n" not in message


def test_string_keys_and_tuples_encode() -> None:
    text, length = encode_xcom("t", {"a": (1, 2), "b": [{"c": None}]}, 1 << 20)
    assert text == '{"a":[1,2],"b":[{"c":null}]}'
    assert length == 2


async def test_int_keyed_dict_fails_the_task_instead_of_arriving_with_string_keys(
    engine: Engine,
) -> None:
    received: list[Any] = []

    with DAG("xcom_int_keys") as dag:

        @task(retries=2, retry_delay=0.01)
        def by_id() -> dict[int, str]:
            return {1: "one", 2: "two"}

        @task
        def consume(value: dict[int, str]) -> None:
            received.append(value)

        consume(by_id())

    result = await engine.run(dag)

    assert result.state is DagRunState.FAILED
    assert received == []  # before: {"1": "one", "2": "two"} arrived downstream
    rows = await ti_rows(engine, result.run_pk)
    bad = rows["by_id", -1]
    assert (bad.state, bad.try_number) == ("failed", 1)  # not retried: the code is wrong
    assert bad.error.startswith("XComError: task 'by_id' returned a dict with the non-string key 1")
    assert rows["consume", -1].state == "upstream_failed"
    assert await xcom_map(engine, result.run_pk) == {}
