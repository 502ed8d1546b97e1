"""DAG-run parameters: defaults and JSON Schema validation (``jsonschema``, as in Airflow)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from airloop.core.jsonsafe import non_string_key
from airloop.exceptions import ParamValidationError


class _NoDefault:
    def __repr__(self) -> str:
        return "<required>"


NO_DEFAULT: Any = _NoDefault()

_JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
#: Python types a Param may name, and the JSON Schema type each stands for.
_PYTHON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}
#: Keywords that only describe a parameter (Airflow's UI reads some of them): accepted.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$defs",
        "$schema",
        "$id",
        "$anchor",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        # Airflow's trigger form
        "description_md",
        "values_display",
        "section",
    }
)
_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS) | _ANNOTATIONS
#: Where a schema holds subschemas: one, a list of them, or a name -> schema mapping.
_ONE = (
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_LIST = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAP = ("properties", "patternProperties", "dependentSchemas", "$defs")
#: Keywords that say which types are valid: with these, a default does not imply a type.
_COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "not", "const", "$ref", "if"})
_FORMATS = FormatChecker()
#: Airflow's form shows a text area for ``format="multiline"``; it constrains nothing.
_DISPLAY_FORMATS = frozenset({"multiline"})


def _json_type(tp: Any) -> str | list[str]:
    """A Param ``type``: a JSON Schema type name, a Python type, or a list of either."""
    if isinstance(tp, list):
        out: list[str] = []
        for item in tp:
            named = _json_type(item)
            out.extend(named if isinstance(named, list) else [named])
        return out
    if tp is None:  # in a list: type=[None, int]
        return "null"
    if isinstance(tp, str):
        if tp not in _JSON_TYPES:
            raise ParamValidationError(
                f"unknown Param type {tp!r} (JSON Schema types: {', '.join(_JSON_TYPES)})"
            )
        return tp
    if isinstance(tp, type) and tp in _PYTHON_TYPES:
        return _PYTHON_TYPES[tp]
    raise ParamValidationError(
        f"Param type {tp!r} is not supported: use a JSON Schema type name "
        f"({', '.join(_JSON_TYPES)}) or one of str, int, float, bool, list, dict, None"
    )


def _check_keywords(schema: Mapping[str, Any], where: str) -> None:
    """Reject keywords jsonschema would silently ignore (a typo) and formats it cannot check."""
    for key, value in schema.items():
        if key not in _KEYWORDS:
            close = difflib.get_close_matches(key, _KEYWORDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            place = f" in {where}" if where else ""
            raise ParamValidationError(f"Param: unknown JSON Schema keyword {key!r}{place}{hint}")
        if key == "format" and value not in _DISPLAY_FORMATS and value not in _FORMATS.checkers:
            checkable = ", ".join(sorted(_FORMATS.checkers))
            raise ParamValidationError(
                f"Param: format {value!r} cannot be checked (not supported yet; "
                f"formats checked: {checkable}, and 'multiline' for display)"
            )
        prefix = f"{where}." if where else ""
        if key in _ONE and isinstance(value, Mapping):
            _check_keywords(value, f"{prefix}{key}")
        elif key in _LIST and isinstance(value, list):
            for i, sub in enumerate(value):
                if isinstance(sub, Mapping):
                    _check_keywords(sub, f"{prefix}{key}[{i}]")
        elif key in _MAP and isinstance(value, Mapping):
            for name, sub in value.items():
                if isinstance(sub, Mapping):
                    _check_keywords(sub, f"{prefix}{key}[{name!r}]")


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Param:
    """A DAG parameter: a default and a JSON Schema, checked as Airflow checks it.

    ``Param(3)`` infers ``type="integer"`` from the default; ``Param(type=int)`` has no
    default and must be given when the run is triggered. Any JSON Schema (2020-12)
    keyword works: ``Param("2026-01-01", type="string", format="date")``,
    ``minimum``/``maximum``, ``enum`` (or ``choices``), ``items``, ``properties``,
    ``required``, ``pattern``, ``anyOf``... Formats are checked by ``jsonschema``'s
    format checker; a format it cannot check is an error, not a silent pass.
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
        if choices is not None and enum is not None:
            raise ParamValidationError("Param: give choices or enum, not both")
        full: dict[str, Any] = dict(schema)
        if (
            type is None
            and default is not NO_DEFAULT
            and default is not None
            and not _COMBINATORS & set(schema)
        ):
            type = default.__class__
            if type not in _PYTHON_TYPES:
                raise ParamValidationError(
                    f"default {_short(default)} is a {type.__name__}, which cannot be "
                    "stored as JSON (run parameters are kept in the database); use a string, "
                    "number, bool, list or dict"
                )
        if type is not None:
            full["type"] = _json_type(type)
        self._type_label = (
            type if isinstance(type, str) else getattr(type, "__name__", None) or "value"
        )
        if isinstance(type, list):
            self._type_label = " or ".join(getattr(t, "__name__", str(t)) for t in type)
        allowed = choices if choices is not None else enum
        if allowed is not None:
            full["enum"] = list(allowed)
        if description is not None:
            full["description"] = description
        _check_keywords(full, "")
        try:
            Draft202012Validator.check_schema(full)
        except SchemaError as exc:
            raise ParamValidationError(f"Param: invalid JSON Schema: {exc.message}") from None
        self.default = default
        self.description = description
        self.choices = allowed
        self.schema = full
        self._validator = Draft202012Validator(full, format_checker=_FORMATS)

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    def _error(self, value: Any) -> ValidationError | None:
        error: ValidationError | None = best_match(self._validator.iter_errors(value))
        return error

    def _describe(self, name: str, value: Any, error: ValidationError, what: str = "") -> str:
        path = "".join(f"[{p!r}]" for p in error.absolute_path)
        where = f"parameter {name!r}" + (f" at {path}" if path else "")
        if error.validator == "type" and not path:
            return f"{where}: {what}{_short(value)} is not a valid {self._type_label}"
        if error.validator == "format" and isinstance(error.instance, str):
            detail = f"{_short(error.instance)} is not a {error.validator_value!r}"
        else:
            detail = " ".join(error.message.split())
            if len(detail) > 200:
                detail = detail[:197] + "..."
            if what:
                return f"{where}: {what}{_short(value)} is invalid ({detail})"
        return f"{where}: {what}{detail}"

    def validate(self, name: str, value: Any) -> Any:
        """``value`` if it is valid. A string that is not, but whose JSON is, is coerced
        (``"7"`` for an integer), as a value typed by a user would be."""
        error = self._error(value)
        if error is None:
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                pass
            else:
                if self._error(parsed) is None:
                    return parsed
        raise ParamValidationError(self._describe(name, value, error))

    def validate_text(self, name: str, text: str) -> Any:
        """Validate a value typed on the command line: JSON when it parses and is valid,
        else the plain text."""
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            if self._error(parsed) is None:
                return parsed
        return self.validate(name, text)

    def check_default(self, name: str) -> None:
        if self.default is NO_DEFAULT:
            return
        error = self._error(self.default)
        if error is not None:
            raise ParamValidationError(self._describe(name, self.default, error, "default "))
        _check_json(name, self.default)

    def __repr__(self) -> str:
        return f"Param(default={self.default!r}, schema={self.schema!r})"


def _check_json(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ParamValidationError(
            f"parameter {name!r}: {_short(value)} cannot be stored as JSON (run parameters "
            "are kept in the database); use a string, number, bool, list or dict"
        ) from None
    found = non_string_key(value)
    if found is not None:
        key, path = found
        raise ParamValidationError(
            f"parameter {name!r}: the non-string key {key!r} ({type(key).__name__}) at "
            f"{path or 'the top level'} would come back as a string (parameters are "
            "stored as JSON); use string keys"
        )


class ParamsSpec(Mapping[str, Param]):
    """The parameters a DAG declares."""

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        self._params: dict[str, Param] = {}
        for name, value in (params or {}).items():
            try:
                param = value if isinstance(value, Param) else Param(value)
            except ParamValidationError as exc:
                raise ParamValidationError(f"parameter {name!r}: {exc}") from None
            param.check_default(name)
            self._params[name] = param

    def __getitem__(self, key: str) -> Param:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def resolve(
        self, given: Mapping[str, Any] | None = None, *, as_text: bool = False
    ) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each value validated against its schema.

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
                _check_json(name, out[name])
            elif param.required:
                raise ParamValidationError(f"parameter {name!r} is required and has no default")
            else:
                out[name] = param.default
        return out


def task_params(
    where: str, given: Mapping[str, Any], dag_params: ParamsSpec | None
) -> dict[str, Any]:
    """A task's own ``params``, checked when the task is defined: the values it sets.

    A plain value for a parameter the DAG declares is checked against the DAG's Param;
    a ``Param`` (or a value for a parameter the DAG does not declare) against its own
    schema, as the DAG's are. A task's Param must have a default.
    """
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise ParamValidationError(f"{where}: params must be a dict with string keys")
    out: dict[str, Any] = {}
    for name, value in given.items():
        try:
            if isinstance(value, Param):
                if value.required:
                    raise ParamValidationError(
                        f"parameter {name!r}: a task's Param needs a default"
                    )
                value.check_default(name)
                out[name] = value.default
            elif dag_params is not None and name in dag_params:
                out[name] = dag_params[name].validate(name, value)
                _check_json(name, out[name])
            else:
                Param(value).check_default(name)
                out[name] = value
        except ParamValidationError as exc:
            raise ParamValidationError(f"{where}: {exc}") from None
    return out


def merge_task_params(
    run_params: Mapping[str, Any], dag_params: ParamsSpec, own: Mapping[str, Any]
) -> dict[str, Any]:
    """The params a task sees: the run's, with the task's own over the DAG's defaults.

    As in Airflow (DAG params < task params < the trigger's conf): a value the run was
    given (one that differs from the DAG's default) wins over the task's.
    """
    merged = dict(run_params)
    for name, value in own.items():
        declared = dag_params.get(name)
        if declared is None or name not in run_params or run_params[name] == declared.default:
            merged[name] = value
    return merged


def parse_cli_params(pairs: list[str], option: str = "--param") -> dict[str, str]:
    """``["n=3", "name=x"]`` -> ``{"n": "3", "name": "x"}``; typed later by each Param."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ParamValidationError(f"{option} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = raw
    return out
