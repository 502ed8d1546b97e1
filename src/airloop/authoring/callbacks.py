"""Callbacks as DAG files give them: a callable, a list of them, or a ``BaseNotifier``.

What a DAG file writes is checked here, when the DAG is defined; running them is the
executors' (task callbacks, in the worker after the try) and the engine's (DAG
callbacks, after the tick that finished the run). See docs/adr/0024.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from airloop.exceptions import DagDefinitionError

#: Task callbacks (BaseOperator arguments, default_args keys, @task arguments).
TASK_CALLBACK_NAMES: tuple[str, ...] = (
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
)
#: DAG callbacks (DAG arguments).
DAG_CALLBACK_NAMES: tuple[str, ...] = ("on_success_callback", "on_failure_callback")

Callback = Callable[[Any], Any]


def normalize_callbacks(where: str, name: str, value: Any) -> tuple[Callback, ...]:
    """``None``, one callable (a notifier is one) or a list of them -> a tuple."""
    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not callable(item):
            raise DagDefinitionError(
                f"{where}: {name} must be a callable, a BaseNotifier or a list of them, "
                f"got {type(item).__name__} {item!r}"
            )
    return tuple(items)


def callback_name(callback: Any) -> str:
    """How a callback is named in logs: its function's or its class's qualified name."""
    name = getattr(callback, "__qualname__", None)
    if name is None:
        name = type(callback).__qualname__
    return str(name)


def is_async_callback(callback: Any) -> bool:
    """Whether calling it gives a coroutine to await (``async def``, or ``async __call__``)."""
    if inspect.iscoroutinefunction(callback):
        return True
    call = getattr(type(callback), "__call__", None)  # noqa: B004 - the class's, not the object
    return inspect.iscoroutinefunction(call) and not inspect.isfunction(callback)


class TaskCallbackAttribute:
    """``task.on_failure_callback``: read from, and set into, the task's settings (set
    after construction, as Airflow allows, it is checked and used like an argument)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj.settings, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        callbacks = normalize_callbacks(f"task {obj.task_id!r}", self.name, value)
        obj.settings = replace(obj.settings, **{self.name: callbacks})


class DagCallbackAttribute:
    """``dag.on_failure_callback``: always a tuple of callables, however it was given."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else obj.__dict__.get(f"_{self.name}", ())

    def __set__(self, obj: Any, value: Any) -> None:
        callbacks = normalize_callbacks(f"DAG {obj.dag_id!r}", self.name, value)
        obj.__dict__[f"_{self.name}"] = callbacks


class CallbackContext(dict[str, Any]):
    """The mapping a callback receives; readable as ``context["ti"]`` or ``context.ti``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
