"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

from airloop.authoring.branch import (
    BaseBranchOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
)
from airloop.operators.bash import BashCommandError, BashOperator
from airloop.operators.python import EmptyOperator, PythonOperator

__all__ = [
    "BaseBranchOperator",
    "BashCommandError",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "LatestOnlyOperator",
    "PythonOperator",
    "ShortCircuitOperator",
]
