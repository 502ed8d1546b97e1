"""``Variable``: Airflow's API for small named values (settings a DAG reads at run time).

Looked up like connections (environment ``AIRLOOP_VAR_<KEY>``, the secrets backend,
the metadata database); written to the metadata database, encrypted. ``await
Variable.aget(...)`` on the event loop; the sync ``Variable.get`` off it (a sync task,
a template), where the lookup runs on the engine's loop while the thread waits.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airloop.connections.lookup import aget_variable_text, configured_sources, metastore, run_lookup
from airloop.connections.sources import VAR_PREFIX, EnvironmentSource
from airloop.exceptions import AirloopError

if TYPE_CHECKING:
    from airloop.settings import Settings

log = logging.getLogger(__name__)

#: ``default_var`` not given (None is a valid default, as in Airflow).
_NOTSET: Any = object()


class VariableNotFound(AirloopError, KeyError):
    """No source holds the key and no default was given (a KeyError, as Airflow's)."""

    def __init__(self, key: str, looked_in: list[str]) -> None:
        self.key = key
        where = ", ".join(looked_in) or "no source"
        self.message = f"variable {key!r} not found (looked in: {where})"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InvalidVariable(AirloopError):
    """A variable's value is not what was asked (JSON) or cannot be stored."""


def _looked_in(key: str, settings: Settings | None = None) -> list[str]:
    return [
        f"environment variable {VAR_PREFIX}{key.upper()}"
        if isinstance(s, EnvironmentSource)
        else s.name
        for s in configured_sources(settings)
    ]


def _decode(key: str, text: str, deserialize_json: bool) -> Any:
    if not deserialize_json:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidVariable(
            f"variable {key!r} is not JSON ({error.msg} at {error.pos}); "
            "read it without deserialize_json"
        ) from None


def _encode(key: str, value: Any, serialize_json: bool) -> str:
    if serialize_json:
        try:
            return json.dumps(value, indent=2)
        except (TypeError, ValueError) as exc:
            raise InvalidVariable(
                f"variable {key!r}: value is not JSON-serializable: {exc}"
            ) from None
    if not isinstance(value, str):
        raise InvalidVariable(
            f"variable {key!r}: value must be a str (got {type(value).__name__}); "
            "pass serialize_json=True to store it as JSON"
        )
    return value


class Variable:
    """Airflow's ``Variable``: ``get``/``set``/``delete`` (sync, off the loop) and their
    ``aget``/``aset``/``adelete`` forms for async code."""

    @classmethod
    async def aget(
        cls, key: str, default_var: Any = _NOTSET, deserialize_json: bool = False
    ) -> Any:
        text = await aget_variable_text(key)
        if text is None:
            if default_var is _NOTSET:
                raise VariableNotFound(key, _looked_in(key))
            return default_var
        return _decode(key, text, deserialize_json)

    @classmethod
    def get(cls, key: str, default_var: Any = _NOTSET, deserialize_json: bool = False) -> Any:
        return run_lookup(
            lambda: cls.aget(key, default_var, deserialize_json), f"Variable.get({key!r})"
        )

    @classmethod
    async def aset(
        cls,
        key: str,
        value: Any,
        description: str | None = None,
        serialize_json: bool = False,
    ) -> None:
        if not key or not isinstance(key, str):
            raise InvalidVariable("a variable needs a non-empty str key")
        text = _encode(key, value, serialize_json)
        env = VAR_PREFIX + key.upper()
        shadowed = [
            s
            for s in configured_sources()
            if isinstance(s, EnvironmentSource) and await s.get_variable(key) is not None
        ]
        if shadowed:
            log.warning(
                "variable %r is set in the metadata database but %s is set too and wins on lookup",
                key,
                env,
            )
        await metastore().set_variables([(key, text, description)])

    @classmethod
    def set(
        cls,
        key: str,
        value: Any,
        description: str | None = None,
        serialize_json: bool = False,
    ) -> None:
        run_lookup(
            lambda: cls.aset(key, value, description, serialize_json), f"Variable.set({key!r})"
        )

    @classmethod
    async def adelete(cls, key: str) -> bool:
        """Delete from the metadata database; True if it was there."""
        return await metastore().delete_variable(key)

    @classmethod
    def delete(cls, key: str) -> bool:
        return run_lookup(lambda: cls.adelete(key), f"Variable.delete({key!r})")
