"""Operators: the nodes of a DAG, with the scheduling settings Airflow users know."""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

from airloop.authoring.airflow_args import (
    TASK_ARGS,
    TASK_DISPLAY_ARGS,
    Unsupported,
    split_task_args,
    unknown_argument,
)
from airloop.authoring.callbacks import (
    TASK_CALLBACK_NAMES,
    Callback,
    TaskCallbackAttribute,
    normalize_callbacks,
)
from airloop.authoring.dependency import DependencyMixin
from airloop.authoring.params import task_params
from airloop.authoring.setup_teardown import SetupTeardownMixin
from airloop.authoring.xcom import Resolved, capture_xcoms
from airloop.authoring.xcom_arg import XComArg, iter_xcom_args, resolve_xcom_args
from airloop.core.executor_names import EXECUTOR_NAMES
from airloop.core.pools import DEFAULT_POOL
from airloop.core.retry import RetryPolicy
from airloop.core.trigger_rules import TriggerRule
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.context import Context
    from airloop.authoring.dag import DAG
    from airloop.authoring.mapped import OperatorPartial
    from airloop.authoring.taskgroup import TaskGroup
    from airloop.authoring.xcom import XComSnapshot
    from airloop.authoring.xcom_arg import OutputLookup

_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
WEIGHT_RULES = ("downstream", "upstream", "absolute")


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


def check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise DagDefinitionError(
            f"invalid {kind} {value!r}: use 1-250 letters, digits, '_', '-' or '.'"
        )
    return value


def _seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise DagDefinitionError(f"{name} must be a timedelta or a number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """How the scheduler treats a task: retries, timeout, pool, priority, trigger rule."""

    retries: int = 0
    retry_delay: float = 300.0
    retry_exponential_backoff: bool = False
    max_retry_delay: float | None = None
    retry_jitter: bool = True
    execution_timeout: float | None = None
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    priority_weight: int = 1
    weight_rule: str = "downstream"
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    #: Which executor runs the task; None: the engine's default (settings ``use_async``).
    executor: str | None = None
    #: Wait for this task's instance in the previous run (by logical date) to succeed
    #: or be skipped (Airflow's depends_on_past).
    depends_on_past: bool = False
    #: ...and for that instance's direct downstream tasks too (implies depends_on_past).
    wait_for_downstream: bool = False
    #: The task's first instance ever (no earlier run has it) ignores depends_on_past.
    ignore_first_depends_on_past: bool = False
    #: Instances of this task queued or running at once over all the DAG's runs.
    max_active_tis_per_dag: int | None = None
    #: Instances of this task queued or running at once within one run.
    max_active_tis_per_dagrun: int | None = None
    #: A Jinja template giving each mapped instance a readable label (rendered after
    #: the try, with its context); no effect on an unmapped task.
    map_index_template: str | None = None
    #: Task callbacks (see authoring/callbacks.py), each a tuple of callables.
    on_execute_callback: tuple[Callback, ...] = ()
    on_success_callback: tuple[Callback, ...] = ()
    on_failure_callback: tuple[Callback, ...] = ()
    on_retry_callback: tuple[Callback, ...] = ()
    on_skipped_callback: tuple[Callback, ...] = ()
    #: Store the return value as XCom (False: it is dropped; pushes are still stored).
    do_xcom_push: bool = True
    #: Store each key of a returned dict as its own XCom too (besides the return value).
    multiple_outputs: bool = False

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            retries=self.retries,
            delay=self.retry_delay,
            exponential_backoff=self.retry_exponential_backoff,
            max_delay=self.max_retry_delay,
            jitter=self.retry_jitter,
        )


#: Airflow's old name of max_active_tis_per_dag (accepted with a DeprecationWarning).
_DEPRECATED_SETTINGS = {"task_concurrency": "max_active_tis_per_dag"}

SETTING_NAMES: frozenset[str] = frozenset(f.name for f in fields(TaskSettings)) | frozenset(
    _DEPRECATED_SETTINGS
)

#: default_args keys the DAG itself uses (as Airflow does): not task settings.
DAG_LEVEL_DEFAULT_ARGS: frozenset[str] = frozenset({"start_date", "end_date"})


def check_default_args(
    dag_id: str, default_args: Mapping[str, Any], *, where: str | None = None
) -> dict[str, Any]:
    """Reject unknown keys and Airflow-only ones that would change behaviour.

    Returns the descriptive ones (``owner``...), which every task of the DAG inherits.
    """
    where = where or f"DAG {dag_id!r}"
    task_args = {k: v for k, v in default_args.items() if k not in DAG_LEVEL_DEFAULT_ARGS}
    if "params" in task_args:
        raise DagDefinitionError(
            f"{where}: params in default_args is not supported; give params to the DAG or to a task"
        )
    display, rest = split_task_args(f"{where}: default_args", task_args)
    unknown = sorted(set(rest) - SETTING_NAMES)
    if unknown:
        known = SETTING_NAMES | set(TASK_ARGS) | TASK_DISPLAY_ARGS | DAG_LEVEL_DEFAULT_ARGS
        raise unknown_argument(where, unknown[0], known, what="default_args key")
    return display


def resolve_settings(
    task_id: str, explicit: Mapping[str, Any], default_args: Mapping[str, Any]
) -> TaskSettings:
    """Explicit arguments win over the DAG's default_args, which win over the defaults."""
    merged: dict[str, Any] = {k: v for k, v in default_args.items() if k in SETTING_NAMES}
    merged.update({k: v for k, v in explicit.items() if v is not NOTSET})
    where = f"task {task_id!r}"
    for old, new in _DEPRECATED_SETTINGS.items():
        if old in merged:
            value = merged.pop(old)
            warnings.warn(
                f"{where}: {old} is deprecated, use {new} (as in Airflow)",
                DeprecationWarning,
                stacklevel=4,
            )
            if merged.setdefault(new, value) != value:
                raise DagDefinitionError(
                    f"{where}: {old}={value!r} and {new}={merged[new]!r} disagree; set only {new}"
                )
    values: dict[str, Any] = {}
    for name in ("max_active_tis_per_dag", "max_active_tis_per_dagrun"):
        if merged.get(name) is not None:
            value = merged[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DagDefinitionError(
                    f"{where}: {name} must be a positive integer or None, got {value!r}"
                )
            values[name] = value
    for name in ("depends_on_past", "wait_for_downstream", "ignore_first_depends_on_past"):
        if name in merged:
            if not isinstance(merged[name], bool):
                raise DagDefinitionError(
                    f"{where}: {name} must be True or False, got {merged[name]!r}"
                )
            values[name] = merged[name]
    if values.get("wait_for_downstream"):
        values["depends_on_past"] = True  # as in Airflow: it implies depends_on_past
    for name in ("retries", "pool_slots", "priority_weight"):
        if name in merged:
            value = merged[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise DagDefinitionError(f"{where}: {name} must be an integer, got {value!r}")
            if name != "priority_weight" and value < (1 if name == "pool_slots" else 0):
                raise DagDefinitionError(f"{where}: {name} cannot be {value}")
            values[name] = value
    if "retry_delay" in merged:
        delay = _seconds(f"{where}: retry_delay", merged["retry_delay"])
        if delay is not None and delay < 0:
            raise DagDefinitionError(f"{where}: retry_delay cannot be negative ({delay:g}s)")
        values["retry_delay"] = delay
    for name in ("max_retry_delay", "execution_timeout"):
        if name in merged:
            seconds = _seconds(f"{where}: {name}", merged[name], allow_none=True)
            if seconds is not None and seconds <= 0:
                raise DagDefinitionError(f"{where}: {name} must be positive, got {seconds}")
            values[name] = seconds
    if merged.get("map_index_template") is not None:
        if not isinstance(merged["map_index_template"], str):
            raise DagDefinitionError(
                f"{where}: map_index_template must be a string (a Jinja template), "
                f"got {type(merged['map_index_template']).__name__}"
            )
        values["map_index_template"] = merged["map_index_template"]
    for name in ("retry_exponential_backoff", "retry_jitter"):
        if name in merged:
            values[name] = bool(merged[name])
    for name in ("do_xcom_push", "multiple_outputs"):
        if name in merged:
            if not isinstance(merged[name], bool):
                raise DagDefinitionError(
                    f"{where}: {name} must be True or False, got {merged[name]!r}"
                )
            values[name] = merged[name]
    if "pool" in merged:
        values["pool"] = check_id(f"pool name for {where}", merged["pool"])
    if merged.get("executor") is not None:
        if merged["executor"] not in EXECUTOR_NAMES:
            raise DagDefinitionError(
                f"{where}: unknown executor {merged['executor']!r} "
                f"(choose from {', '.join(EXECUTOR_NAMES)})"
            )
        values["executor"] = merged["executor"]
    if "weight_rule" in merged:
        if merged["weight_rule"] not in WEIGHT_RULES:
            raise DagDefinitionError(
                f"{where}: weight_rule must be one of {', '.join(WEIGHT_RULES)}, "
                f"got {merged['weight_rule']!r}"
            )
        values["weight_rule"] = merged["weight_rule"]
    if "trigger_rule" in merged:
        try:
            values["trigger_rule"] = TriggerRule(merged["trigger_rule"])
        except ValueError:
            choices = ", ".join(r.value for r in TriggerRule)
            raise DagDefinitionError(
                f"{where}: unknown trigger_rule {merged['trigger_rule']!r} (choose from {choices})"
            ) from None
    for name in TASK_CALLBACK_NAMES:
        if name in merged:
            values[name] = normalize_callbacks(where, name, merged[name])
    return TaskSettings(**values)


class AbstractOperator(DependencyMixin, SetupTeardownMixin):
    """A node of a DAG: an operator, or a mapped operator that expands at run time."""

    is_mapped: ClassVar[bool] = False
    #: Attributes rendered as Jinja templates just before ``execute`` (see templating.py).
    template_fields: ClassVar[Sequence[str]] = ()
    #: A templated string ending in one of these is the name of a template file.
    template_ext: ClassVar[Sequence[str]] = ()
    #: How a UI should show each template field ("sql", "json"...): descriptive.
    template_fields_renderers: ClassVar[Mapping[str, str]] = {}
    #: Outputs of the upstream tasks, captured by ``bind`` for ``ti.xcom_pull``.
    upstream_outputs: Mapping[str, Any] | None = None
    #: The task's own ``params`` (checked values), merged over the DAG's for it.
    task_params: Mapping[str, Any] | None = None
    #: The XComs of the upstream tasks, captured by ``bind`` for ``ti.xcom_pull``.
    pullable_xcoms: XComSnapshot | None = None
    #: The template fields holding XComArgs (a set of the instance's once it has one).
    #: Read as an attribute, never through ``self.__dict__``: reading ``__dict__``
    #: would give every operator a dict object of its own (memory, GC work).
    _xcom_fields: frozenset[str] | set[str] = frozenset()
    #: The rendered template fields of the operator that ran (set on its copy).
    rendered_fields: dict[str, Any] | None = None
    #: ``@task`` arguments as written, when a string among them is a template (else
    #: None): ``(op_args, op_kwargs)`` with XComArgs in place (their values are never
    #: rendered). Worked out once, when the task is defined.
    argument_templates: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    @property
    def has_templates(self) -> bool:
        """Something to render before ``execute`` (one check: no cost otherwise)."""
        return bool(self.template_fields) or self.argument_templates is not None

    #: Can a try that was running when airloop died be started again (same try)?
    #: True for operators that re-attach to their external work (checkpoint or name);
    #: otherwise such a try is failed and retried under the retry policy.
    resumable: ClassVar[bool] = False

    #: Task callbacks, kept in ``settings`` (tuples); settable as in Airflow.
    on_execute_callback = TaskCallbackAttribute()
    on_success_callback = TaskCallbackAttribute()
    on_failure_callback = TaskCallbackAttribute()
    on_retry_callback = TaskCallbackAttribute()
    on_skipped_callback = TaskCallbackAttribute()

    @property
    def can_resume(self) -> bool:
        return self.resumable

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None,
        settings: Mapping[str, Any],
        doc: str | None = None,
        display: Mapping[str, Any] | None = None,
        task_group: TaskGroup | None = None,
    ) -> None:
        from airloop.authoring.dag import current_dag
        from airloop.authoring.taskgroup import group_for

        check_id("task_id", task_id)
        if dag is None and task_group is not None:
            dag = task_group.dag
        self.dag: DAG | None = dag if dag is not None else current_dag()
        #: The group the task is drawn in (None outside a DAG); its id prefixes the task's.
        self.task_group = group_for(self.dag, task_group, f"task {task_id!r}")
        mapping = self.task_group.mapping if self.task_group is not None else None
        if mapping is not None and not self.is_mapped:
            raise DagDefinitionError(
                f"task {task_id!r}: a {type(self).__name__} cannot be made inside the "
                f"mapped task group {mapping.group_id!r}"
            )
        if self.task_group is not None:
            task_id = self.task_group.child_id(task_id)
        self.task_id = check_id("task_id", task_id)
        group = self.task_group
        self.settings = resolve_settings(
            task_id, settings, group.effective_default_args() if group is not None else {}
        )
        self.doc = doc
        #: Descriptive Airflow arguments (owner, doc_md...): kept for display, no effect.
        self.display: dict[str, Any] = {
            **(group.effective_display_defaults() if group is not None else {}),
            **(display or {}),
        }
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        if self.dag is not None:
            self.dag.add_task(self)
        # Template fields given XComArgs before this __init__ ran: link them now.
        for name in sorted(self._xcom_fields):
            for arg in iter_xcom_args(getattr(self, name)):
                arg.operator.set_downstream(self)

    # -- settings, readable the Airflow way -------------------------------------------

    @property
    def retries(self) -> int:
        return self.settings.retries

    @property
    def owner(self) -> str | None:
        owner = self.display.get("owner")
        return None if owner is None else str(owner)

    @property
    def pool(self) -> str:
        return self.settings.pool

    @property
    def trigger_rule(self) -> TriggerRule:
        return self.settings.trigger_rule

    @property
    def execution_timeout(self) -> float | None:
        return self.settings.execution_timeout

    @property
    def do_xcom_push(self) -> bool:
        return self.settings.do_xcom_push

    @property
    def multiple_outputs(self) -> bool:
        return self.settings.multiple_outputs

    @property
    def is_async(self) -> bool:
        """Whether running this task means awaiting a coroutine (else: a blocking call)."""
        raise NotImplementedError

    @property
    def output(self) -> XComArg:
        from airloop.authoring.xcom_arg import XComArg

        return XComArg(self)

    def xcom_dependencies(self) -> Iterable[AbstractOperator]:
        """Operators whose outputs this one consumes (they become upstream tasks)."""
        return ()

    def bind(self, map_index: int, lookup: OutputLookup) -> Any:
        """The arguments this task instance runs with, upstream outputs resolved by ``lookup``.

        Plain values (picklable), so they can travel with a reference to the DAG file to
        another process or a Dask worker, where ``rebuild`` makes the operator again.
        """
        raise NotImplementedError

    def rebuild(self, bound: Any) -> BaseOperator:
        """The operator to run, from what ``bind`` returned."""
        raise NotImplementedError

    def materialize(self, map_index: int, lookup: OutputLookup) -> BaseOperator:
        """The operator to run for ``map_index``, with upstream outputs resolved by ``lookup``."""
        return self.rebuild(self.bind(map_index, lookup))

    # -- dependencies ---------------------------------------------------------------

    def _same_dag(self, other: AbstractOperator) -> None:
        if self.dag is None or other.dag is not self.dag:
            raise DagDefinitionError(
                f"cannot link {self.task_id!r} and {other.task_id!r}: both must belong to one DAG"
            )

    def edge_roots(self) -> list[AbstractOperator]:
        return [self]

    def edge_leaves(self) -> list[AbstractOperator]:
        return [self]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id!r}>"


class BaseOperator(AbstractOperator):
    """Subclass and implement ``execute(context)``, as ``def`` or ``async def``.

    A sync ``execute`` runs in the executor's bounded thread pool, never on the loop.
    Its return value is stored as the task's XCom and passed to downstream tasks.
    Airflow arguments airloop does not implement are errors unless their value changes
    nothing (see ``airflow_args``); descriptive ones (``owner``...) are kept in ``display``.
    """

    #: Airflow arguments of this kind of operator, beyond the common ones, not supported yet.
    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # Made inside a mapped task group, an operator is a task mapped over the group's
        # expansion (ADR 0029): ``Op(task_id=..., x=arg)`` gives the MappedOperator that
        # ``Op.partial(task_id=..., x=arg)`` would, with the group's sources.
        if "task_id" in kwargs:
            mapping = _mapping_group(cls, kwargs)
            if mapping is not None:
                return cls.partial(**kwargs).in_group(mapping)  # type: ignore[return-value]
        return super().__new__(cls)

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        retries: int = NOTSET,
        retry_delay: timedelta | float = NOTSET,
        retry_exponential_backoff: bool = NOTSET,
        max_retry_delay: timedelta | float | None = NOTSET,
        retry_jitter: bool = NOTSET,
        execution_timeout: timedelta | float | None = NOTSET,
        pool: str = NOTSET,
        pool_slots: int = NOTSET,
        priority_weight: int = NOTSET,
        weight_rule: str = NOTSET,
        trigger_rule: TriggerRule | str = NOTSET,
        executor: str | None = NOTSET,
        depends_on_past: bool = NOTSET,
        wait_for_downstream: bool = NOTSET,
        ignore_first_depends_on_past: bool = NOTSET,
        max_active_tis_per_dag: int | None = NOTSET,
        max_active_tis_per_dagrun: int | None = NOTSET,
        task_concurrency: int | None = NOTSET,
        map_index_template: str | None = NOTSET,
        on_execute_callback: Any = NOTSET,
        on_success_callback: Any = NOTSET,
        on_failure_callback: Any = NOTSET,
        on_retry_callback: Any = NOTSET,
        on_skipped_callback: Any = NOTSET,
        do_xcom_push: bool = NOTSET,
        multiple_outputs: bool = NOTSET,
        doc: str | None = None,
        task_group: TaskGroup | None = None,
        params: Mapping[str, Any] | None = None,
        **airflow: Any,
    ) -> None:
        display = _check_airflow_args(type(self), task_id, dag, airflow)
        if params:
            from airloop.authoring.dag import current_dag

            owner = dag if dag is not None else current_dag()
            self.task_params = task_params(
                f"task {task_id!r}", params, owner.params if owner is not None else None
            )
        super().__init__(
            task_id=task_id,
            dag=dag,
            doc=doc,
            display=display,
            task_group=task_group,
            settings={
                "retries": retries,
                "retry_delay": retry_delay,
                "retry_exponential_backoff": retry_exponential_backoff,
                "max_retry_delay": max_retry_delay,
                "retry_jitter": retry_jitter,
                "execution_timeout": execution_timeout,
                "pool": pool,
                "pool_slots": pool_slots,
                "priority_weight": priority_weight,
                "weight_rule": weight_rule,
                "trigger_rule": trigger_rule,
                "executor": executor,
                "depends_on_past": depends_on_past,
                "wait_for_downstream": wait_for_downstream,
                "ignore_first_depends_on_past": ignore_first_depends_on_past,
                "max_active_tis_per_dag": max_active_tis_per_dag,
                "max_active_tis_per_dagrun": max_active_tis_per_dagrun,
                "task_concurrency": task_concurrency,
                "map_index_template": map_index_template,
                "on_execute_callback": on_execute_callback,
                "on_success_callback": on_success_callback,
                "on_failure_callback": on_failure_callback,
                "on_retry_callback": on_retry_callback,
                "on_skipped_callback": on_skipped_callback,
                "do_xcom_push": do_xcom_push,
                "multiple_outputs": multiple_outputs,
            },
        )

    def execute(self, context: Context) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.execute)

    #: Attributes whose XComArgs the operator resolves itself (not template fields).
    own_xcom_arg_fields: ClassVar[frozenset[str]] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        # As Airflow: an XComArg in a template field (nested in lists/dicts too) makes
        # its task upstream and is resolved at run time; anywhere else it is an error.
        if (
            isinstance(value, _CONTAINERS)
            and (isinstance(value, XComArg) or value)  # an empty collection holds none
            and not name.startswith("_")
            and name not in self.own_xcom_arg_fields
        ):
            args = list(iter_xcom_args(value))
            if args:
                self._note_xcom_field(name, args)
        object.__setattr__(self, name, value)

    def _note_xcom_field(self, name: str, args: list[XComArg]) -> None:
        where = f"task {getattr(self, 'task_id', type(self).__name__)!r}"
        if name not in self.template_fields:
            raise DagDefinitionError(
                f"{where}: attribute {name!r} is not a template field but holds {args[0]!r}; "
                f"task outputs are resolved in template_fields only (as in Airflow): add "
                f"{name!r} to {type(self).__name__}.template_fields"
            )
        fields = self._xcom_fields
        if not isinstance(fields, set):
            fields = self._xcom_fields = set()
        fields.add(name)
        if hasattr(self, "downstream_task_ids"):  # set up: link now (else in __init__)
            for arg in args:
                arg.operator.set_downstream(self)

    def xcom_dependencies(self) -> list[AbstractOperator]:
        fields = sorted(self._xcom_fields)
        found = [arg.operator for n in fields for arg in iter_xcom_args(getattr(self, n))]
        return list({id(op): op for op in found}.values())

    def bind(self, map_index: int, lookup: OutputLookup) -> Any:
        # The upstream XComs, for ti.xcom_pull in execute() or in a template.
        xcoms = capture_xcoms(self, lookup)
        fields = self._xcom_fields
        if not fields:
            return xcoms
        resolved = {
            n: resolve_xcom_args(getattr(self, n), lookup, Resolved) for n in sorted(fields)
        }
        return _BoundFields(xcoms, resolved)

    def rebuild(self, bound: Any) -> BaseOperator:
        if isinstance(bound, _BoundFields):
            clone = copy.copy(self)
            for name, value in bound.fields.items():
                object.__setattr__(clone, name, value)
            return with_xcoms(clone, bound.xcoms, copied=True)
        return with_xcoms(self, bound)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """``MyOperator.partial(task_id=..., fixed=...).expand(varying=[...])``."""
        from airloop.authoring.mapped import OperatorPartial, operator_factory

        return OperatorPartial(operator_factory(cls), kwargs)


_CONTAINERS = (XComArg, list, tuple, dict, set, frozenset)


def _mapping_group(cls: type[BaseOperator], kwargs: Mapping[str, Any]) -> Any:
    """The mapped task group an operator made now with ``kwargs`` would belong to."""
    from airloop.authoring.taskgroup import mapping_for

    mapping = mapping_for(kwargs["task_id"], kwargs.get("dag"), kwargs.get("task_group"))
    if mapping is not None:
        from airloop.authoring.branch import (
            BaseBranchOperator,
            BranchPythonOperator,
            ShortCircuitOperator,
        )

        if issubclass(cls, (BaseBranchOperator, BranchPythonOperator, ShortCircuitOperator)):
            raise DagDefinitionError(
                f"task {kwargs['task_id']!r}: a {cls.__name__} cannot be made inside the "
                f"mapped task group {mapping.group_id!r} yet (branching per map index)"
            )
    return mapping


@dataclass(frozen=True, slots=True)
class _BoundFields:
    """What ``bind`` returns for an operator with XComArgs in its template fields."""

    xcoms: XComSnapshot | None
    fields: dict[str, Any]


def with_xcoms(
    op: BaseOperator, xcoms: XComSnapshot | None, *, copied: bool = False
) -> BaseOperator:
    """``op`` (a copy of it) holding the XComs it may pull."""
    if xcoms is None:
        return op
    clone = op if copied else copy.copy(op)
    object.__setattr__(clone, "pullable_xcoms", xcoms)
    return clone


#: Arguments of BaseOperator itself (for "did you mean" suggestions).
_OPERATOR_NAMES: frozenset[str] = SETTING_NAMES | {"task_id", "dag", "doc", "task_group"}


def _check_airflow_args(
    cls: type[BaseOperator], task_id: object, dag: DAG | None, args: dict[str, Any]
) -> dict[str, Any]:
    """The descriptive arguments among ``args``; raise for any other that matters."""
    from airloop.authoring.dag import current_dag

    where = f"task {task_id!r}"
    owner = dag if dag is not None else current_dag()
    for name in ("start_date", "end_date"):
        # A task date equal to its DAG's (common in migrated DAGs) changes nothing.
        if name in args and owner is not None and args[name] == getattr(owner, name):
            del args[name]
    display, rest = split_task_args(where, args, extra=cls.unsupported_airflow_args)
    if rest:
        known = (
            _OPERATOR_NAMES | set(TASK_ARGS) | TASK_DISPLAY_ARGS | set(cls.unsupported_airflow_args)
        )
        raise unknown_argument(where, next(iter(rest)), known)
    return display
