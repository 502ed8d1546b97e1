"""Async hooks: clients for external systems, shared per connection id within a process."""

from airloop.hooks.aws import AwsBaseHook, AwsHookError
from airloop.hooks.base import BaseHook
from airloop.hooks.http import HttpError, HttpHook, HttpResponse
from airloop.hooks.mysql import MySqlHook
from airloop.hooks.postgres import PostgresHook
from airloop.hooks.s3 import S3Hook
from airloop.hooks.smtp import SmtpHook
from airloop.hooks.sql import (
    DbApiHook,
    QueryResult,
    SqlConnectionError,
    SqlError,
    fetch_all_handler,
    fetch_one_handler,
)
from airloop.hooks.sqlite import SqliteHook

__all__ = [
    "AwsBaseHook",
    "AwsHookError",
    "BaseHook",
    "DbApiHook",
    "HttpError",
    "HttpHook",
    "HttpResponse",
    "MySqlHook",
    "PostgresHook",
    "QueryResult",
    "S3Hook",
    "SmtpHook",
    "SqlConnectionError",
    "SqlError",
    "SqliteHook",
    "fetch_all_handler",
    "fetch_one_handler",
]
