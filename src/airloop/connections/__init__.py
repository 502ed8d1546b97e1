"""Connections and Variables: Airflow's model, looked up in the environment, a secrets
backend, then the metadata database (encrypted at rest)."""

from airloop.connections.lookup import (
    aget_connection,
    aget_variable_text,
    configured_sources,
    set_sources,
)
from airloop.connections.model import Connection, ConnectionNotFound, InvalidConnection
from airloop.connections.sources import EnvironmentSource, SecretsSource
from airloop.connections.variable import InvalidVariable, Variable, VariableNotFound

__all__ = [
    "Connection",
    "ConnectionNotFound",
    "EnvironmentSource",
    "InvalidConnection",
    "InvalidVariable",
    "SecretsSource",
    "Variable",
    "VariableNotFound",
    "aget_connection",
    "aget_variable_text",
    "configured_sources",
    "set_sources",
]
