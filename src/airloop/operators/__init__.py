"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

from airloop.operators.email import EmailOperator
from airloop.operators.http import HttpOperator, SimpleHttpOperator
from airloop.operators.sql import (
    BaseSQLOperator,
    SqlCheckFailed,
    SQLCheckOperator,
    SQLExecuteQueryOperator,
    SQLValueCheckOperator,
)

__all__ = [
    "BaseSQLOperator",
    "EmailOperator",
    "HttpOperator",
    "SQLCheckOperator",
    "SQLExecuteQueryOperator",
    "SQLValueCheckOperator",
    "SimpleHttpOperator",
    "SqlCheckFailed",
]
