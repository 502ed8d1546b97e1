"""Executors: one API (base.py), one module per backend.

The names below are what ``@task(executor=...)`` and settings accept; the
implementations are imported only when an engine first needs them.
"""

EXECUTOR_NAMES: tuple[str, ...] = ("async", "thread", "process", "dask")
