"""The everyday operators, async from the ground up (Airflow's class and argument names)."""

# HTTP and email (issue 12)
from airloop.operators.email import EmailOperator
from airloop.operators.http import HttpOperator, SimpleHttpOperator

__all__: list[str] = []
# HTTP and email (issue 12)
__all__ += ["EmailOperator", "HttpOperator", "SimpleHttpOperator"]
