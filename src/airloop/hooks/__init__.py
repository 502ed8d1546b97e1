"""Async hooks: clients for external systems, shared per connection id within a process."""

from airloop.hooks.base import BaseHook

__all__ = ["BaseHook"]

# -- SQL (issue 12: hooks/sql.py, postgres.py, mysql.py, sqlite.py) --------------------
from airloop.hooks.mysql import MySqlHook
from airloop.hooks.postgres import PostgresHook
from airloop.hooks.sql import (
    DbApiHook,
    QueryResult,
    SqlConnectionError,
    SqlError,
    fetch_all_handler,
    fetch_one_handler,
)
from airloop.hooks.sqlite import SqliteHook

__all__ += [
    "DbApiHook",
    "MySqlHook",
    "PostgresHook",
    "QueryResult",
    "SqlConnectionError",
    "SqlError",
    "SqliteHook",
    "fetch_all_handler",
    "fetch_one_handler",
]
