"""The trigger form's inputs, one per DAG param, from the param's JSON schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from airloop.core.masking import MASK

HIDDEN_DEFAULT = "(the default is secret: leave this empty to use it)"

Kind = Literal["string", "number", "integer", "boolean", "enum", "json", "date", "datetime"]


@dataclass(frozen=True, slots=True)
class ParamField:
    """One input. ``value`` is the default as the input shows it ("" when none);
    ``nullable``: an empty input sends null; ``required``: no default and not nullable."""

    name: str
    kind: Kind
    value: str
    description: str | None
    required: bool
    nullable: bool
    options: list[str] = field(default_factory=list)
    option_values: list[str] = field(default_factory=list)  # enum values as JSON
    minimum: float | None = None
    maximum: float | None = None
    title: str | None = None


def _types(schema: dict[str, Any]) -> tuple[list[str], bool]:
    raw = schema.get("type")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    nullable = "null" in types
    return [t for t in types if t != "null"], nullable


def _kind(schema: dict[str, Any], types: list[str]) -> Kind:
    if "enum" in schema:
        return "enum"
    if len(types) != 1:
        return "json"  # several types (or none): the user writes JSON
    only = types[0]
    if only == "string":
        fmt = schema.get("format")
        return "date" if fmt == "date" else "datetime" if fmt == "date-time" else "string"
    if only in ("number", "integer", "boolean"):
        return only  # type: ignore[return-value]
    return "json"


def _shown(kind: Kind, value: Any) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else ""
    if kind == "enum":
        return json.dumps(value)
    if kind == "json":
        return json.dumps(value, indent=2)
    if kind == "datetime" and isinstance(value, str):
        return value[:19]  # datetime-local wants YYYY-MM-DDTHH:MM[:SS]
    return str(value)


def param_fields(params: dict[str, dict[str, Any]]) -> list[ParamField]:
    """``params`` as the API's DAG detail gives it: ``{name: {"schema", "description",
    "default"?}}``."""
    out: list[ParamField] = []
    for name, spec in params.items():
        schema = spec.get("schema") or {}
        types, nullable = _types(schema)
        kind = _kind(schema, types)
        has_default = "default" in spec
        # A default the API masked (a sensitive name): never shown, and never sent back
        # as "***" -- an empty input is left out of conf, so the run gets the real one.
        hidden = has_default and spec.get("default") == MASK
        description = spec.get("description") or schema.get("description")
        if hidden:
            description = (description + " " if description else "") + HIDDEN_DEFAULT
        enum = list(schema.get("enum") or [])
        out.append(
            ParamField(
                name=name,
                kind=kind,
                value=_shown(kind, spec.get("default")) if has_default and not hidden else "",
                description=description,
                required=not has_default and not nullable and kind != "boolean",
                nullable=not hidden and (nullable or (has_default and spec.get("default") is None)),
                options=[str(v) for v in enum],
                option_values=[json.dumps(v) for v in enum],
                minimum=schema.get("minimum"),
                maximum=schema.get("maximum"),
                title=schema.get("title"),
            )
        )
    return out
