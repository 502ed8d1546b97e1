"""Airflow arguments airloop knows but does not implement: rejected unless they change nothing.

Every argument a DAG file may pass is in one of three groups:

- implemented (the signatures of ``DAG``, ``BaseOperator``, ``BaseSensor``, ``@task``);
- descriptive: stored for display, with no effect on running (``owner``, ``doc_md``...);
- not supported yet: the table below. A value that changes nothing (Airflow's
  default, e.g. ``email_on_failure=False`` or ``email=None``) is accepted,
  so a migrated DAG that spells its defaults out still loads; any other value is an
  error naming the argument and where it was given. Nothing is silently ignored.

Anything else is unknown, and an error with a "did you mean" suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airloop.exceptions import DagDefinitionError


@dataclass(frozen=True, slots=True)
class Unsupported:
    """An Airflow argument with no effect here yet: the values that change nothing."""

    feature: str
    no_op: Callable[[Any], bool]
    no_op_text: str


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple, dict, set, str)) and not value)


def _is(*accepted: Any) -> Callable[[Any], bool]:
    return lambda value: any(
        value is a or (type(value) is type(a) and value == a) for a in accepted
    )


def _u(feature: str, no_op: Callable[[Any], bool] = _empty, text: str = "None") -> Unsupported:
    return Unsupported(feature, no_op, text)


#: Operator arguments (also valid in default_args, on @task and in .partial()).
TASK_ARGS: dict[str, Unsupported] = {
    "pre_execute": _u("pre/post-execute hooks"),
    "post_execute": _u("pre/post-execute hooks"),
    "email": _u("email alerts"),
    "email_on_failure": _u("email alerts", _is(False), "False"),
    "email_on_retry": _u("email alerts", _is(False), "False"),
    "queue": _u("executor queues", lambda v: v is None or v == "default", "'default'"),
    "sla": _u("SLAs"),
    "run_as_user": _u("run_as_user"),
    "executor_config": _u("executor_config"),
    "resources": _u("operator resources"),
    "inlets": _u("lineage and assets"),
    "outlets": _u("lineage and assets"),
    "start_date": _u("per-task start_date"),
    "end_date": _u("per-task end_date"),
}

#: Purely descriptive operator arguments: stored (``operator.display``), no effect on runs.
TASK_DISPLAY_ARGS: frozenset[str] = frozenset(
    {
        "owner",
        "doc_md",
        "doc_rst",
        "doc_json",
        "doc_yaml",
        "task_display_name",
        "ui_color",
        "ui_fgcolor",
    }
)

#: Sensor arguments not supported yet.
SENSOR_ARGS: dict[str, Unsupported] = {
    # Between pokes an airloop sensor already holds no thread, but it keeps its pool
    # slot; Airflow's reschedule mode releases it, which would change pool behaviour.
    "mode": _u("sensor mode='reschedule'", lambda v: v == "poke", "'poke'"),
    "deferrable": _u("deferrable operators", _is(False), "False"),
    "silent_fail": _u("silent_fail", _is(False), "False"),
}

#: DAG arguments not supported yet.
DAG_ARGS: dict[str, Unsupported] = {
    "sla_miss_callback": _u("SLAs"),
    "access_control": _u("access control"),
    "is_paused_upon_creation": _u("is_paused_upon_creation (use 'airloop dags pause')"),
    "max_consecutive_failed_dag_runs": _u(
        "auto-pausing after failed runs", lambda v: v in (None, 0), "0"
    ),
}

#: Purely descriptive DAG arguments: stored (``dag.display``), no effect on runs.
DAG_DISPLAY_ARGS: frozenset[str] = frozenset(
    {"dag_display_name", "owner_links", "default_view", "orientation"}
)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_unsupported(where: str, table: Mapping[str, Unsupported], name: str, value: Any) -> None:
    """Raise if ``value`` for the not-yet-supported ``name`` would change behaviour."""
    entry = table[name]
    if entry.no_op(value):
        return
    raise DagDefinitionError(
        f"{where}: {name}={_short(value)} is not supported yet ({entry.feature}); "
        f"remove it or set it to {entry.no_op_text}"
    )


def unknown_argument(
    where: str, name: str, known: Iterable[str], what: str = "argument"
) -> DagDefinitionError:
    """The error for an argument nobody knows, with the closest known name."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DagDefinitionError(f"{where}: unknown {what} {name!r}{hint}")


def split_task_args(
    where: str, args: Mapping[str, Any], *, extra: Mapping[str, Unsupported] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the Airflow-only arguments in ``args``; return (display ones, everything else).

    Not-yet-supported arguments with a no-op value are dropped; others raise.
    """
    display: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    tables = [TASK_ARGS, *([extra] if extra else [])]
    for name, value in args.items():
        if name in TASK_DISPLAY_ARGS:
            display[name] = value
            continue
        table = next((t for t in tables if name in t), None)
        if table is None:
            rest[name] = value
        else:
            check_unsupported(where, table, name, value)
    return display, rest
