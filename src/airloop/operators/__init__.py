"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

# -- SQL (issue 12: operators/sql.py) --------------------------------------------------
from airloop.operators.sql import (
    BaseSQLOperator,
    SqlCheckFailed,
    SQLCheckOperator,
    SQLExecuteQueryOperator,
    SQLValueCheckOperator,
)

__all__ = [
    "BaseSQLOperator",
    "SQLCheckOperator",
    "SQLExecuteQueryOperator",
    "SQLValueCheckOperator",
    "SqlCheckFailed",
]
