"""A trigger's ``conf`` checked against the DAG's params as the scheduler serialized
them (``serialized_dag``): each value against its param's JSON Schema (2020-12, with
format checks), defaults filled in, and every problem named per param -- all of them
at once, so a form can show each next to its field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from airloop.dagbag.serialized import SerializedParam

_FORMATS = FormatChecker()


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _problem(schema: Mapping[str, Any], value: Any) -> str | None:
    error = best_match(Draft202012Validator(schema, format_checker=_FORMATS).iter_errors(value))
    if error is None:
        return None
    path = "".join(f"[{p!r}]" for p in error.absolute_path)
    detail = " ".join(error.message.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"{'at ' + path + ': ' if path else ''}{detail}"


def check_conf(
    params: Mapping[str, SerializedParam], conf: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the run's params: defaults overlaid with ``conf``, {param: what is wrong}).

    A string that does not fit its schema but whose JSON does is taken as that JSON
    (``"7"`` for an integer), as the CLI's ``--param`` and Airflow's form do. A key
    that is not a param of the DAG is an error: the scheduler would refuse the run.
    """
    resolved: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in conf:
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            errors[key] = f"not a parameter of this DAG (its parameters: {known})"
    for name, param in params.items():
        if name not in conf:
            if "default" in param:
                resolved[name] = param["default"]
            else:
                errors[name] = "required: this parameter has no default"
            continue
        value = conf[name]
        problem = _problem(param["schema"], value)
        if problem is not None and isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            else:
                if _problem(param["schema"], parsed) is None:
                    value, problem = parsed, None
        if problem is not None:
            errors[name] = f"{_short(conf[name])} is invalid: {problem}"
        else:
            resolved[name] = value
    return resolved, errors
