"""``var`` and ``conn`` in a task's context and templates (``{{ var.value.x }}``,
``{{ var.json.x }}``, ``{{ conn.my_db.host }}``).

Templates render in a worker thread (ADR 0022): each attribute is a sync lookup
(``run_lookup``) that runs on the engine's loop while the thread waits. The executors'
runner installs these into ``airloop.authoring.context`` (authoring is below this layer).
"""

from __future__ import annotations

from typing import Any

from airloop.connections.lookup import aget_connection, run_lookup
from airloop.connections.model import Connection, ConnectionNotFound
from airloop.connections.variable import _NOTSET, Variable


class _VariableValues:
    """``var.value.key`` / ``var.json.key``; ``.get(key, default)`` as in Airflow."""

    __slots__ = ("_json",)

    def __init__(self, deserialize_json: bool) -> None:
        self._json = deserialize_json

    def get(self, key: str, default_var: Any = _NOTSET) -> Any:
        return Variable.get(key, default_var, deserialize_json=self._json)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __repr__(self) -> str:
        return f"<variables ({'json' if self._json else 'value'})>"


class VariableAccessor:
    """``context["var"]``: ``.value`` (text) and ``.json`` (parsed)."""

    __slots__ = ("json", "value")

    def __init__(self) -> None:
        self.value = _VariableValues(False)
        self.json = _VariableValues(True)

    def __repr__(self) -> str:
        return "<variables>"


class ConnectionAccessor:
    """``context["conn"]``: ``conn.my_db`` / ``conn.get("my_db")`` is the Connection."""

    __slots__ = ()

    def get(self, conn_id: str, default_conn: Any = None) -> Any:
        """The connection, or ``default_conn`` when no source holds it (as Airflow)."""
        try:
            return self[conn_id]
        except ConnectionNotFound:
            return default_conn

    def __getattr__(self, conn_id: str) -> Connection:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return self[conn_id]

    def __getitem__(self, conn_id: str) -> Connection:
        return run_lookup(lambda: aget_connection(conn_id), f"conn.{conn_id}")

    def __repr__(self) -> str:
        return "<connections>"
