"""DAG-run parameters: defaults, types, validation (pydantic does the checking)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from airloop.exceptions import ParamValidationError


class _NoDefault:
    def __repr__(self) -> str:
        return "<required>"


NO_DEFAULT: Any = _NoDefault()


class Param:
    """A DAG parameter with a default, a type and optional choices.

    ``Param(3)`` infers ``int`` from the default; ``Param(type=int)`` has no default
    and must be given when the run is triggered.
    """

    def __init__(
        self,
        default: Any = NO_DEFAULT,
        *,
        type: Any = None,
        description: str | None = None,
        choices: list[Any] | None = None,
    ) -> None:
        if type is None:
            type = Any if default is NO_DEFAULT or default is None else default.__class__
        self.default = default
        self.type = type
        self.description = description
        self.choices = choices
        self._adapter: TypeAdapter[Any] = TypeAdapter(type)
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
