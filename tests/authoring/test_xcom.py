"""XCom keys without an engine: pushes are checked at the push, inference, subscripts."""

from __future__ import annotations

from typing import TypedDict

import pytest

from airloop.authoring.xcom import (
    Pushed,
    TaskXComs,
    XComPullError,
    infer_multiple_outputs,
    multiple_outputs,
    resolve_subscript,
)
from airloop.exceptions import XComError


def test_a_push_is_checked_at_once() -> None:
    pushed = Pushed("t", limit=20)
    pushed.push("ok", [1, 2])
    assert pushed.items() == [("ok", "[1,2]")]
    with pytest.raises(XComError, match="XCom key '' is invalid"):
        pushed.push("", 1)
    with pytest.raises(XComError, match="XCom key 3 is invalid"):
        pushed.push(3, 1)
    with pytest.raises(XComError, match="'return_value' is the return value's"):
        pushed.push("return_value", 1)
    with pytest.raises(XComError, match=r"task 't' pushed \(key 's'\) a set that cannot"):
        pushed.push("s", {1})
    with pytest.raises(XComError, match="over the limit of 20"):
        pushed.push("big", "x" * 30)
    with pytest.raises(XComError, match="non-string key 1"):
        pushed.push("d", {1: 2})


class Row(TypedDict):
    a: int


def test_multiple_outputs_inference_follows_airflow() -> None:
    def plain() -> dict:  # type: ignore[type-arg]
        return {}

    def typed() -> dict[str, int]:
        return {}

    def td() -> Row:
        return {"a": 1}

    def listed() -> list[int]:
        return []

    def unannotated():  # type: ignore[no-untyped-def]
        return {}

    def unresolvable() -> Missing:  # type: ignore[name-defined]  # noqa: F821
        return None

    assert [infer_multiple_outputs(f) for f in (plain, typed, td)] == [True, True, True]
    assert [infer_multiple_outputs(f) for f in (listed, unannotated, unresolvable)] == [
        False,
        False,
        False,
    ]


def test_multiple_outputs_splits_a_dict() -> None:
    assert multiple_outputs("t", {"a": 1, "b": [2]}, 100) == [("a", "1"), ("b", "[2]")]
    assert multiple_outputs("t", None, 100) == []
    with pytest.raises(XComError, match="returned a str, not a dict"):
        multiple_outputs("t", "x", 100)


def test_subscripts_prefer_a_stored_key_then_the_return_value() -> None:
    found = TaskXComs(False, {-1: {"return_value": '{"a":{"b":[5,6]},"k":0}', "k": '"own"'}})
    assert resolve_subscript("t", found, ("k",)) == "own"
    assert resolve_subscript("t", found, ("a", "b", 1)) == 6
    with pytest.raises(XComPullError, match=r"the output of task 't'\['a'\] has no item \['c'\]"):
        resolve_subscript("t", found, ("a", "c"))
    with pytest.raises(XComPullError, match="stored no XCom 'z' and no return value"):
        resolve_subscript("t", TaskXComs(False, {}), ("z",))
    mapped = TaskXComs(True, {0: {"return_value": "[1,2]"}, 1: {"return_value": "[3,4]"}})
    assert resolve_subscript("m", mapped, (0,)) == [1, 3]
