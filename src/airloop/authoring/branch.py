"""Branching and skipping (Airflow 3's): ``BaseBranchOperator``, ``@task.branch``,
``BranchPythonOperator``, ``@task.short_circuit``, ``ShortCircuitOperator``,
``LatestOnlyOperator``.

The decision is made in the task (wherever it runs) and travels to the scheduler as
data: the task succeeds by raising ``DownstreamTasksSkipped`` with the ids of the
tasks to skip, the runner reports them on its ``TaskFinished`` and the planner skips
them in the same plan (so in the same write) as the task's success.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airloop.authoring.decorators import PythonTaskOperator, TaskDecorator
from airloop.authoring.operator import BaseOperator
from airloop.core.schedules import DataInterval
from airloop.core.specs import UNMAPPED
from airloop.exceptions import DagDefinitionError, DownstreamTasksSkipped, FailTask

if TYPE_CHECKING:
    from airloop.authoring.context import Context
    from airloop.authoring.dag import DAG
    from airloop.authoring.operator import AbstractOperator


class BranchError(FailTask):
    """A branch chose something that is not a task directly downstream of it."""


def _node(context: Context) -> tuple[DAG, AbstractOperator]:
    dag = context.dag
    return dag, dag.task_dict[context.ti.task_id]


def _not_mapped(context: Context, what: str) -> None:
    if context.ti.map_index != UNMAPPED:
        raise FailTask(f"{what} {context.ti.task_id!r}: a mapped {what} is not supported yet")


def _descendants(dag: DAG, starts: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        for down in dag.task_dict[todo.pop()].downstream_task_ids:
            if down not in seen:
                seen.add(down)
                todo.append(down)
    return seen


def _chosen_ids(dag: DAG, task_id: str, chosen: Any) -> set[str]:
    """The task ids ``chosen`` names: a task id, a group id (its root tasks), a list
    of either, or None (nothing)."""
    if chosen is None:
        return set()
    items = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(items, Iterable) or isinstance(items, dict):
        raise BranchError(
            f"branch task {task_id!r} returned {chosen!r}: return a task id, a task "
            "group id, a list of them, or None"
        )
    ids: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise BranchError(
                f"branch task {task_id!r} returned {item!r} among its choices: "
                "choices are task ids or task group ids (strings)"
            )
        if item in dag.task_dict:
            ids.add(item)
        elif item in dag.task_group_dict:
            ids.update(t.task_id for t in dag.task_group_dict[item].roots)
        else:
            ids.add(item)  # reported below with the valid choices
    return ids


def skip_all_except(context: Context, chosen: Any) -> Any:
    """Skip the tasks directly downstream of this one that ``chosen`` does not name
    (and that are not downstream of a chosen one: a join reached through a chosen
    path runs). Raises ``DownstreamTasksSkipped`` when something is skipped, or
    ``BranchError`` for a choice that is not directly downstream; returns ``chosen``."""
    _not_mapped(context, "branch")
    dag, node = _node(context)
    direct = set(node.downstream_task_ids)
    ids = _chosen_ids(dag, node.task_id, chosen)
    wrong = sorted(ids - direct)
    if wrong:
        groups = sorted(
            g
            for g, group in dag.task_group_dict.items()
            if {t.task_id for t in group.roots} <= direct and group.roots
        )
        valid = ", ".join(repr(t) for t in [*sorted(direct), *groups]) or "none"
        raise BranchError(
            f"branch task {node.task_id!r} chose {', '.join(map(repr, wrong))}, which "
            f"{'is' if len(wrong) == 1 else 'are'} not directly downstream of it; "
            f"valid choices: {valid}"
        )
    keep = ids | _descendants(dag, ids)
    to_skip = sorted(direct - keep)
    # The XCom: the choice as given, a set or other iterable as a list (JSON).
    value = chosen if chosen is None or isinstance(chosen, (str, list)) else sorted(chosen)
    if to_skip:
        raise DownstreamTasksSkipped(to_skip, value=value)
    return value


def short_circuit(context: Context, condition: Any, ignore_downstream_trigger_rules: bool) -> Any:
    """A falsy ``condition`` skips downstream: every task below (teardowns aside) with
    ``ignore_downstream_trigger_rules``, else the direct ones only (the rest follow
    their trigger rules)."""
    if condition:
        return condition
    _not_mapped(context, "short circuit")
    dag, node = _node(context)
    if ignore_downstream_trigger_rules:
        below = _descendants(dag, [node.task_id])
    else:
        below = set(node.downstream_task_ids)
    to_skip = sorted(t for t in below if not dag.task_dict[t].is_teardown)
    if to_skip:
        raise DownstreamTasksSkipped(to_skip)
    return None


async def _then(
    coro: Coroutine[Any, Any, Any], decide: Callable[[Any], Any]
) -> Any:  # an async callable's result, then the decision
    return decide(await coro)


class BaseBranchOperator(BaseOperator):
    """Subclass and implement ``choose_branch(context)`` (``def`` or ``async def``):
    return a task id, a task group id (its root tasks), a list of them, or None. The
    chosen tasks must be directly downstream; the others directly downstream are
    skipped (and, through their trigger rules, what follows them)."""

    def choose_branch(self, context: Context) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement choose_branch(context)")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.choose_branch)

    def execute(self, context: Context) -> Any:
        chosen = self.choose_branch(context)
        if inspect.iscoroutine(chosen):
            return _then(chosen, lambda c: skip_all_except(context, c))
        return skip_all_except(context, chosen)


class BranchPythonOperator(PythonTaskOperator):
    """Airflow's ``BranchPythonOperator``: ``python_callable`` returns the choice
    (as ``choose_branch`` does); what ``@task.branch`` creates."""

    def execute(self, context: Context) -> Any:
        chosen = super().execute(context)
        if inspect.iscoroutine(chosen):
            return _then(chosen, lambda c: skip_all_except(context, c))
        return skip_all_except(context, chosen)


class ShortCircuitOperator(PythonTaskOperator):
    """Airflow's ``ShortCircuitOperator``: a falsy result of ``python_callable`` skips
    downstream (see ``short_circuit``); a truthy one is the task's XCom."""

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = bool(ignore_downstream_trigger_rules)

    def execute(self, context: Context) -> Any:
        condition = super().execute(context)
        ignore = self.ignore_downstream_trigger_rules
        if inspect.iscoroutine(condition):
            return _then(condition, lambda c: short_circuit(context, c, ignore))
        return short_circuit(context, condition, ignore)


class LatestOnlyOperator(BaseBranchOperator):
    """Airflow's: skips its direct downstream tasks unless the run is the latest
    scheduled one (now falls within the interval after the run's data interval).
    Runs without a data interval and manual runs are not skipped (as Airflow 3)."""

    def choose_branch(self, context: Context) -> Any:
        dag, node = _node(context)
        everything = sorted(node.downstream_task_ids)
        run = context.dag_run
        start, end = run.data_interval_start, run.data_interval_end
        if run.run_type == "manual" or start is None or end is None or dag.timetable is None:
            context.log.info("not a scheduled run with a data interval: not skipping")
            return everything
        following = dag.timetable.interval_after(DataInterval(start, end))
        now = datetime.now(UTC)
        if following.start < now <= following.end:
            context.log.info("latest run: allowing downstream tasks to run")
            return everything
        context.log.info(
            "not the latest run (the latest covers %s to %s): skipping downstream",
            following.start.isoformat(),
            following.end.isoformat(),
        )
        return []


class _ChoiceDecorator(TaskDecorator):
    """``@task.branch`` / ``@task.short_circuit``: a ``@task`` with another operator."""

    kind = "task"

    def partial(self, **kwargs: Any) -> Any:
        raise DagDefinitionError(
            f"@task.{self.kind} {self.function.__name__!r}: mapping (.partial/.expand) "
            "is not supported yet"
        )

    def expand(self, **mapped: Any) -> Any:
        return self.partial()


class BranchDecorator(_ChoiceDecorator):
    kind = "branch"
    operator_class = BranchPythonOperator


class ShortCircuitDecorator(_ChoiceDecorator):
    kind = "short_circuit"
    operator_class = ShortCircuitOperator
    extra_settings = frozenset({"ignore_downstream_trigger_rules"})


def branch_task(python_callable: Callable[..., Any] | None = None, /, **settings: Any) -> Any:
    """``@task.branch``: the function returns the task id(s) or group id to follow."""
    if python_callable is not None:
        return BranchDecorator(python_callable, settings)
    return lambda fn: BranchDecorator(fn, settings)


def short_circuit_task(
    python_callable: Callable[..., Any] | None = None, /, **settings: Any
) -> Any:
    """``@task.short_circuit(ignore_downstream_trigger_rules=True)``: a falsy result
    skips downstream."""
    if python_callable is not None:
        return ShortCircuitDecorator(python_callable, settings)
    return lambda fn: ShortCircuitDecorator(fn, settings)
