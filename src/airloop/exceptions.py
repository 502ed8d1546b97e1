"""Exceptions users see. Each message says what is wrong and where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AirloopError(Exception):
    """Base class of airloop's own errors."""


class DagDefinitionError(AirloopError):
    """A DAG is malformed: a cycle, a duplicate task id, a bad argument."""


class CycleError(DagDefinitionError):
    pass


class DuplicateTaskIdError(DagDefinitionError):
    pass


class ParamValidationError(AirloopError):
    """A DAG-run parameter is unknown, missing or invalid."""


class DagFileError(AirloopError):
    """A DAG file could not be loaded. ``location`` is ``path:line`` when known."""

    def __init__(self, path: str, message: str, *, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.location = f"{path}:{line}" if line else path
        super().__init__(f"{self.location}: {message}")


class SkipTask(AirloopError):
    """Raise inside a task to mark it skipped."""


class FailTask(AirloopError):
    """Raise inside a task to fail it without any retry."""


class DownstreamTasksSkipped(AirloopError):
    """Raised by a task that succeeded and skips some tasks downstream of it (a
    branch's unchosen paths, a short circuit), as Airflow 3's. The task succeeds with
    ``value`` as its XCom; the scheduler skips ``tasks`` in the same write."""

    def __init__(self, tasks: Sequence[str], value: Any = None) -> None:
        self.tasks = tuple(tasks)
        self.value = value
        super().__init__(f"skipping downstream tasks: {', '.join(self.tasks)}")


class TaskTimeout(AirloopError, TimeoutError):
    """A task ran longer than its execution_timeout.

    Raised inside the executor where the timeout fired. ``abandoned``: the code could
    not be stopped (a thread, or a coroutine that ignored its cancellation) and was
    left to finish on its own.
    """

    def __init__(self, message: str = "execution_timeout exceeded", *, abandoned: bool) -> None:
        super().__init__(message)
        self.abandoned = abandoned


class SensorTimeout(FailTask):
    """A sensor's condition was not met within its timeout (no retry, as in Airflow)."""


class XComError(AirloopError):
    """A task's return value cannot be stored: too large or not serializable."""


class DatabaseError(AirloopError):
    """The metadata database cannot be used (bad URL, unreachable, schema out of date),
    or refused a write (a constraint): retrying the same thing cannot help."""


class TransientDatabaseError(DatabaseError):
    """The database could not be reached or dropped the connection: the same write may
    succeed later (the scheduler retries it with backoff)."""


class LeaseLostError(AirloopError):
    """A write about a DAG whose lease this scheduler no longer holds (ADR 0041)."""


class RunExistsError(AirloopError):
    """A DAG run with this run id exists already."""


class SettingsError(AirloopError):
    """The settings file or an AIRLOOP_* variable is invalid."""
