"""DAG-run parameters: defaults, types, validation (pydantic does the checking)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from airloop.exceptions import ParamValidationError


class _NoDefault:
    def __repr__(self) -> str:
        return "<required>"


NO_DEFAULT: Any = _NoDefault()


#: Airflow's Param takes JSON Schema: type names and the common keywords map to these.
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}
_JSON_CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_length",
    "maxItems": "max_length",
    "pattern": "pattern",
}


def _schema_type(tp: Any) -> Any:
    if isinstance(tp, str):
        try:
            return _JSON_TYPES[tp]
        except KeyError:
            raise ParamValidationError(
                f"unknown Param type {tp!r} (JSON Schema types: {', '.join(_JSON_TYPES)})"
            ) from None
    if isinstance(tp, list):  # ["null", "integer"] -> int | None
        members = [_schema_type(t) for t in tp]
        union = members[0]
        for member in members[1:]:
            union = union | member
        return union
    return tp


class Param:
    """A DAG parameter with a default, a type and optional choices.

    ``Param(3)`` infers ``int`` from the default; ``Param(type=int)`` has no default
    and must be given when the run is triggered. Airflow's JSON-Schema spelling works
    too: ``Param(5, type="integer", minimum=1, maximum=10)``, ``enum=[...]``,
    ``minLength``/``maxLength``, ``pattern``, ``type=["null", "string"]``.
    """

    def __init__(
        self,
        default: Any = NO_DEFAULT,
        *,
        type: Any = None,
        description: str | None = None,
        choices: list[Any] | None = None,
        enum: list[Any] | None = None,
        **schema: Any,
    ) -> None:
        unknown = sorted(set(schema) - set(_JSON_CONSTRAINTS) - {"title", "format", "examples"})
        if unknown:
            raise ParamValidationError(
                f"Param: unsupported keyword {unknown[0]!r} "
                f"(supported: {', '.join(sorted(_JSON_CONSTRAINTS))}, enum, choices)"
            )
        if type is None:
            type = Any if default is NO_DEFAULT or default is None else default.__class__
        type = _schema_type(type)
        constraints = {_JSON_CONSTRAINTS[k]: v for k, v in schema.items() if k in _JSON_CONSTRAINTS}
        self.default = default
        self.type = type
        self.description = description
        self.choices = choices if choices is not None else enum
        self._adapter: TypeAdapter[Any] = TypeAdapter(
            Annotated[type, Field(**constraints)] if constraints else type
        )
        if default is not NO_DEFAULT:
            self.validate("<default>", default)

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    def validate(self, name: str, value: Any) -> Any:
        try:
            out = self._adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]["msg"]
            raise ParamValidationError(
                f"parameter {name!r}: {value!r} is not a valid {_type_name(self.type)} ({first})"
            ) from None
        return self._check_choice(name, out)

    def validate_text(self, name: str, text: str) -> Any:
        """Validate a value typed on the command line: JSON when it parses, else the plain text."""
        try:
            out = self._adapter.validate_json(text)
        except ValidationError:
            try:
                out = self._adapter.validate_strings(text)
            except ValidationError as exc:
                first = exc.errors()[0]["msg"]
                raise ParamValidationError(
                    f"parameter {name!r}: {text!r} is not a valid {_type_name(self.type)} ({first})"
                ) from None
        return self._check_choice(name, out)

    def _check_choice(self, name: str, out: Any) -> Any:
        if self.choices is not None and out not in self.choices:
            raise ParamValidationError(
                f"parameter {name!r}: {out!r} is not one of {self.choices!r}"
            )
        return out

    def __repr__(self) -> str:
        return f"Param(default={self.default!r}, type={_type_name(self.type)})"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


class ParamsSpec(Mapping[str, Param]):
    """The parameters a DAG declares."""

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        self._params: dict[str, Param] = {
            name: value if isinstance(value, Param) else Param(value)
            for name, value in (params or {}).items()
        }

    def __getitem__(self, key: str) -> Param:
        return self._params[key]

    def __iter__(self) -> Any:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def resolve(
        self, given: Mapping[str, Any] | None = None, *, as_text: bool = False
    ) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each value validated (and coerced) by its type.

        With ``as_text`` the given values are strings typed by a user (``--param k=v``).
        """
        given = dict(given or {})
        unknown = sorted(set(given) - set(self._params))
        if unknown:
            known = ", ".join(sorted(self._params)) or "none"
            raise ParamValidationError(
                f"unknown parameter {unknown[0]!r} (this DAG's parameters: {known})"
            )
        out: dict[str, Any] = {}
        for name, param in self._params.items():
            if name in given:
                value = given[name]
                out[name] = (
                    param.validate_text(name, value) if as_text else param.validate(name, value)
                )
            elif param.required:
                raise ParamValidationError(f"parameter {name!r} is required and has no default")
            else:
                out[name] = param.default
        try:
            json.dumps(out)
        except (TypeError, ValueError):
            bad = next(k for k, v in out.items() if not _is_json(v))
            raise ParamValidationError(
                f"parameter {bad!r}: {out[bad]!r} cannot be stored as JSON (run parameters "
                "are kept in the database); use a string, number, bool, list or dict"
            ) from None
        return out


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def parse_cli_params(pairs: list[str], option: str = "--param") -> dict[str, str]:
    """``["n=3", "name=x"]`` -> ``{"n": "3", "name": "x"}``; typed later by each Param."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ParamValidationError(f"{option} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = raw
    return out
