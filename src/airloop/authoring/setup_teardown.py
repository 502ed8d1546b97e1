"""Setup and teardown tasks (Airflow's): ``@setup``, ``@teardown``, ``as_setup()``,
``as_teardown(setups=...)``.

A teardown runs once everything upstream of it is done, even if the work between
failed, provided one of its setups succeeded (trigger rule
``all_done_setup_success``). It does not decide the run's state unless
``on_failure_fail_dagrun=True``: the tasks before it do (``core.skips.effective_leaves``).
A ``fail_fast`` run never skips or stops a teardown.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Self

from airloop.core.trigger_rules import TriggerRule
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.decorators import TaskDecorator
    from airloop.authoring.operator import AbstractOperator


class SetupTeardownMixin:
    """What every operator has: its setup/teardown role and the methods that set it."""

    #: A setup task: teardowns downstream run only if one of their setups succeeded.
    is_setup: bool = False
    #: A teardown task: runs when its upstream is done (all_done_setup_success).
    is_teardown: bool = False
    #: A failed teardown fails the run only with this (Airflow's default: False).
    on_failure_fail_dagrun: bool = False

    def as_setup(self) -> Self:
        """Make this task a setup task; returns it (``s = op.as_setup()``)."""
        op = _operator(self)
        if op.is_teardown:
            raise DagDefinitionError(f"task {op.task_id!r} is a teardown: it cannot be a setup too")
        _not_in_mapped_group(op, "setup")
        op.is_setup = True
        return self

    def as_teardown(
        self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None
    ) -> Self:
        """Make this task a teardown; ``setups`` become setup tasks and its upstream
        (Airflow's ``create >> work >> delete.as_teardown(setups=create)``)."""
        op = _operator(self)
        fail_dagrun = (
            op.on_failure_fail_dagrun if on_failure_fail_dagrun is None else on_failure_fail_dagrun
        )
        make_teardown(op, on_failure_fail_dagrun=bool(fail_dagrun))
        if setups is not None:
            for item in setups if isinstance(setups, (list, tuple, set)) else [setups]:
                setup = _operator(item)
                setup.as_setup()
                setup.set_downstream(op)
        return self


def link_leaves(tasks: list[AbstractOperator]) -> list[AbstractOperator]:
    """The leaves ``group >> x`` links from (Airflow's rule): teardowns are ignored, a
    teardown leaf standing for the work above it in the group -- the nearest tasks
    that are not teardowns and have no other non-teardown downstream task in the group,
    not going through a setup-to-teardown edge."""
    by_id = {t.task_id: t for t in tasks}

    def has_work_below(task: AbstractOperator, exclude: str) -> bool:
        return any(
            d != exclude and d in by_id and not by_id[d].is_teardown
            for d in task.downstream_task_ids
        )

    def work_above(task: AbstractOperator) -> Iterator[AbstractOperator]:
        for up_id in sorted(task.upstream_task_ids):
            up = by_id.get(up_id)
            if up is None:
                continue
            if up.is_teardown:
                yield from work_above(up)
            elif task.is_teardown and up.is_setup:
                continue
            elif not has_work_below(up, exclude=task.task_id):
                yield up

    found: dict[str, AbstractOperator] = {}
    for task in tasks:
        if task.downstream_task_ids.isdisjoint(by_id):
            for leaf in work_above(task) if task.is_teardown else [task]:
                found.setdefault(leaf.task_id, leaf)
    return list(found.values())


def _operator(obj: Any) -> AbstractOperator:
    from airloop.authoring.operator import AbstractOperator
    from airloop.authoring.xcom_arg import XComArg

    if isinstance(obj, XComArg):
        return obj.operator
    if isinstance(obj, AbstractOperator):
        return obj
    raise DagDefinitionError(f"expected a task, got {obj!r}")


def _not_in_mapped_group(op: AbstractOperator, role: str) -> None:
    mapping = op.task_group.mapping if op.task_group is not None else None
    if mapping is not None:
        raise DagDefinitionError(
            f"task {op.task_id!r}: {role} tasks inside the mapped task group "
            f"{mapping.group_id!r} are not supported yet; make the {role} outside the group"
        )


def make_teardown(op: AbstractOperator, *, on_failure_fail_dagrun: bool) -> None:
    """Mark ``op`` a teardown; its trigger rule becomes all_done_setup_success."""
    if op.is_setup:
        raise DagDefinitionError(f"task {op.task_id!r} is a setup: it cannot be a teardown too")
    _not_in_mapped_group(op, "teardown")
    rule = op.settings.trigger_rule
    if rule not in (TriggerRule.ALL_SUCCESS, TriggerRule.ALL_DONE_SETUP_SUCCESS):
        raise DagDefinitionError(
            f"teardown {op.task_id!r}: a teardown's trigger rule is all_done_setup_success; "
            f"it cannot have trigger_rule={rule.value!r}"
        )
    op.is_teardown = True
    op.on_failure_fail_dagrun = on_failure_fail_dagrun
    op.settings = dataclasses.replace(op.settings, trigger_rule=TriggerRule.ALL_DONE_SETUP_SUCCESS)


class _RoleDecorator:
    """``@setup`` / ``@teardown`` over ``@task``: calls make setup or teardown tasks."""

    def __init__(self, decorator: TaskDecorator, role: str, fail_dagrun: bool) -> None:
        self._decorator = decorator
        self._role = role
        self._fail_dagrun = fail_dagrun
        self.__wrapped__ = decorator.function
        self.__name__ = getattr(decorator.function, "__name__", "task")
        self.__doc__ = decorator.function.__doc__

    def _mark(self, out: Any) -> Any:
        op = _operator(out)
        if self._role == "setup":
            op.as_setup()
        else:
            make_teardown(op, on_failure_fail_dagrun=self._fail_dagrun)
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._mark(self._decorator(*args, **kwargs))

    def override(self, **settings: Any) -> _RoleDecorator:
        _check_settings(self._role, settings)
        return _RoleDecorator(self._decorator.override(**settings), self._role, self._fail_dagrun)

    def expand(self, **mapped: Any) -> Any:
        return self._mark(self._decorator.expand(**mapped))

    def partial(self, **kwargs: Any) -> _RolePartial:
        return _RolePartial(self, self._decorator.partial(**kwargs))


class _RolePartial:
    def __init__(self, role: _RoleDecorator, partial: Any) -> None:
        self._role = role
        self._partial = partial

    def expand(self, **mapped: Any) -> Any:
        return self._role._mark(self._partial.expand(**mapped))


def _check_settings(role: str, settings: dict[str, Any]) -> None:
    if role == "teardown" and "trigger_rule" in settings:
        raise DagDefinitionError(
            "@teardown: a teardown's trigger rule is all_done_setup_success; "
            "trigger_rule cannot be set"
        )


def _as_task(fn: Callable[..., Any], settings: dict[str, Any]) -> TaskDecorator:
    """A function, or a ``@task`` already (``@setup`` stacked on ``@task(...)``)."""
    from airloop.authoring.decorators import TaskDecorator, task

    if isinstance(fn, TaskDecorator):
        return fn.override(**settings) if settings else fn
    if not inspect.isfunction(fn):
        raise DagDefinitionError(
            f"@setup/@teardown needs a function or a @task, got {fn!r} "
            "(task groups cannot be setups or teardowns)"
        )
    return task(**settings)(fn)


def setup(python_callable: Callable[..., Any] | None = None, /, **settings: Any) -> Any:
    """``@setup`` or ``@setup(retries=...)``: a ``@task`` that is a setup task."""

    def wrap(fn: Callable[..., Any]) -> _RoleDecorator:
        return _RoleDecorator(_as_task(fn, settings), "setup", False)

    return wrap(python_callable) if python_callable is not None else wrap


def teardown(
    python_callable: Callable[..., Any] | None = None,
    /,
    *,
    on_failure_fail_dagrun: bool = False,
    **settings: Any,
) -> Any:
    """``@teardown`` or ``@teardown(on_failure_fail_dagrun=True, ...)``: a ``@task``
    that is a teardown task."""
    _check_settings("teardown", settings)

    def wrap(fn: Callable[..., Any]) -> _RoleDecorator:
        return _RoleDecorator(_as_task(fn, settings), "teardown", bool(on_failure_fail_dagrun))

    return wrap(python_callable) if python_callable is not None else wrap
