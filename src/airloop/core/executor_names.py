"""The executors a task may name (``@task(executor=...)``, ``sync_executor``).

The names live in core so authoring and settings can check them without importing
the executors themselves (which sit a layer above).
"""

EXECUTOR_NAMES: tuple[str, ...] = ("async", "thread", "process", "dask")
