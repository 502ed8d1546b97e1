"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

from airloop.authoring.branch import (
    BaseBranchOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
)
from airloop.operators.bash import BashCommandError, BashOperator
from airloop.operators.email import EmailOperator
from airloop.operators.http import HttpOperator, SimpleHttpOperator
from airloop.operators.python import EmptyOperator, PythonOperator
from airloop.operators.sql import (
    BaseSQLOperator,
    SqlCheckFailed,
    SQLCheckOperator,
    SQLExecuteQueryOperator,
    SQLValueCheckOperator,
)
from airloop.operators.trigger_dagrun import TriggerDagRunOperator

__all__ = [
    "BaseBranchOperator",
    "BaseSQLOperator",
    "BashCommandError",
    "BashOperator",
    "BranchPythonOperator",
    "EmailOperator",
    "EmptyOperator",
    "HttpOperator",
    "LatestOnlyOperator",
    "PythonOperator",
    "SQLCheckOperator",
    "SQLExecuteQueryOperator",
    "SQLValueCheckOperator",
    "ShortCircuitOperator",
    "SimpleHttpOperator",
    "SqlCheckFailed",
    "TriggerDagRunOperator",
]
