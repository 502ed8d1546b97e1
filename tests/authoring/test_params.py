"""Param validation is JSON Schema (checked by ``jsonschema`` with formats), as in Airflow."""

from __future__ import annotations

from typing import Any

import pytest

from airloop import DAG, Param
from airloop.exceptions import ParamValidationError


def resolve(params: dict[str, Any], given: dict[str, Any], *, as_text: bool = False) -> Any:
    with DAG("p", params=params) as dag:
        pass
    return dag.params.resolve(given, as_text=as_text)


@pytest.mark.parametrize(
    ("param", "good", "bad", "message"),
    [
        (
            Param("2026-01-01", type="string", format="date"),
            "2026-02-28",
            "2026-02-30",
            "parameter 'x': '2026-02-30' is not a 'date'",
        ),
        (
            Param(None, type=["null", "string"], format="date-time"),
            "2026-01-01T10:00:00Z",
            "yesterday",
            "parameter 'x': 'yesterday' is not a 'date-time'",
        ),
        (
            Param("a@b.org", format="email"),
            "c@d.org",
            "not-an-email",
            "'not-an-email' is not a 'email'",
        ),
        (
            Param([1], type="array", items={"type": "integer"}),
            [1, 2],
            [1, "two"],
            "parameter 'x' at [1]: 'two' is not of type 'integer'",
        ),
        (
            Param(
                {"host": "h"},
                type="object",
                properties={"host": {"type": "string"}, "port": {"type": "integer"}},
                required=["host"],
                additionalProperties=False,
            ),
            {"host": "db", "port": 5432},
            {"port": 1},
            "parameter 'x': 'host' is a required property",
        ),
        (
            Param({}, type="object", additionalProperties=False, properties={}),
            {},
            {"oops": 1},
            "Additional properties are not allowed ('oops' was unexpected)",
        ),
        (Param(4, type="integer", multipleOf=2), 6, 5, "5 is not a multiple of 2"),
        (Param([1], type="array", uniqueItems=True), [1, 2], [1, 1], "has non-unique elements"),
        (Param("x", const="x"), "x", "y", "'x' was expected"),
        (
            Param(1, anyOf=[{"type": "integer"}, {"type": "string", "pattern": "^[a-z]+$"}]),
            "abc",
            "ABC",
            "parameter 'x': 'ABC' does not match '^[a-z]+$'",
        ),
        (Param(5, type="integer", minimum=1, maximum=10), 10, 11, "greater than the maximum"),
    ],
)
def test_json_schema_keywords_are_checked(param: Param, good: Any, bad: Any, message: str) -> None:
    assert resolve({"x": param}, {"x": good}) == {"x": good}
    with pytest.raises(ParamValidationError) as info:
        resolve({"x": param}, {"x": bad})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_text_is_json_first_then_the_plain_string() -> None:
    params = {
        "day": Param("2026-01-01", type="string", format="date"),
        "n": Param(3, type="integer"),
        "tags": Param([], type="array", items={"type": "string"}),
    }
    got = resolve(params, {"day": "2026-03-01", "n": "7", "tags": '["a","b"]'}, as_text=True)
    assert got == {"day": "2026-03-01", "n": 7, "tags": ["a", "b"]}
    with pytest.raises(
        ParamValidationError, match=r"^parameter 'day': '2026-13-01' is not a 'date'"
    ):
        resolve(params, {"day": "2026-13-01"}, as_text=True)


def test_a_bad_default_names_the_dag_and_the_param() -> None:
    with pytest.raises(ParamValidationError) as info:
        DAG("d", params={"when": Param("soon", format="date")})
    assert str(info.value) == "DAG 'd': parameter 'when': default 'soon' is not a 'date'"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Param(1, minimun=0),
            "Param: unknown JSON Schema keyword 'minimun' (did you mean 'minimum'?)",
        ),
        (
            lambda: Param([], type="array", items={"type": "string", "maxLenght": 3}),
            "Param: unknown JSON Schema keyword 'maxLenght' in items (did you mean 'maxLength'?)",
        ),
        (lambda: Param("x", format="uri"), "Param: format 'uri' cannot be checked"),
        (lambda: Param(1, type="int"), "unknown Param type 'int'"),
        (
            lambda: Param(1, minimum="zero"),
            "Param: invalid JSON Schema: 'zero' is not of type 'number'",
        ),
        (lambda: Param(1, choices=[1], enum=[1]), "Param: give choices or enum, not both"),
    ],
)
def test_schema_mistakes_are_errors_at_definition(make: Any, message: str) -> None:
    with pytest.raises(ParamValidationError) as info:
        make()
    assert str(info.value).startswith(message)


def test_display_only_keywords_are_accepted() -> None:
    param = Param(
        "x",
        type="string",
        title="X",
        description="an x",
        description_md="**x**",
        examples=["x"],
        section="General",
        values_display={"x": "Ex"},
        format="multiline",
        enum=["x", "y"],
    )
    assert resolve({"p": param}, {"p": "y"}) == {"p": "y"}


def test_non_string_dict_keys_in_params_are_rejected() -> None:
    with pytest.raises(ParamValidationError, match=r"parameter 'm': .*non-string key 1 \(int\)"):
        resolve({"m": Param({}, type="object")}, {"m": {1: "a"}})


def test_python_types_and_lists_of_them() -> None:
    params = {"n": Param(None, type=[None, int]), "r": Param(type=float)}
    assert resolve(params, {"r": 2}) == {"n": None, "r": 2}
    assert resolve(params, {"n": "4", "r": "0.5"}, as_text=True) == {"n": 4, "r": 0.5}
    with pytest.raises(ParamValidationError, match=r"^parameter 'r': 'x' is not a valid float$"):
        resolve(params, {"r": "x"}, as_text=True)
    with pytest.raises(ParamValidationError, match="Param type <class 'set'> is not supported"):
        Param(type=set)
