"""The DAG: a named graph of tasks with its schedule, defaults and parameters."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airloop.authoring.airflow_args import (
    DAG_ARGS,
    DAG_DISPLAY_ARGS,
    check_unsupported,
    unknown_argument,
)
from airloop.authoring.callbacks import DagCallbackAttribute
from airloop.authoring.operator import AbstractOperator, check_default_args, check_id
from airloop.authoring.params import ParamsSpec
from airloop.authoring.taskgroup import TaskGroup
from airloop.authoring.templating import pop_template_settings
from airloop.core.schedules import ScheduleError, parse_schedule
from airloop.core.trigger_rules import TriggerRule
from airloop.exceptions import (
    CycleError,
    DagDefinitionError,
    DuplicateTaskIdError,
    ParamValidationError,
)

_current: contextvars.ContextVar[DAG | None] = contextvars.ContextVar(
    "airloop_current_dag", default=None
)


#: While a DAG file is imported (``collecting``): every DAG constructed, in order.
_registry: contextvars.ContextVar[list[DAG] | None] = contextvars.ContextVar(
    "airloop_dag_registry", default=None
)


@contextlib.contextmanager
def collecting() -> Iterator[list[DAG]]:
    """Record every DAG constructed inside the block (``auto_register=False`` ones aside).

    The loader imports a DAG file inside this, so DAGs made in a loop or a factory
    function are found even though only the last (or none) is a module global.
    """
    found: list[DAG] = []
    token = _registry.set(found)
    try:
        yield found
    finally:
        _registry.reset(token)


def current_dag() -> DAG | None:
    """The DAG whose ``with`` block is being executed, if any."""
    return _current.get()


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Build operators that belong to no DAG (the per-map-index instances of a mapped task)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def _check_dag_args(dag_id: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive Airflow DAG arguments among ``args``; raise for any other that matters."""
    display: dict[str, Any] = {}
    where = f"DAG {dag_id!r}"
    for name, value in args.items():
        if name in DAG_DISPLAY_ARGS:
            display[name] = value
        elif name in DAG_ARGS:
            check_unsupported(where, DAG_ARGS, name, value)
        else:
            known = _DAG_NAMES | set(DAG_ARGS) | DAG_DISPLAY_ARGS
            raise unknown_argument(where, name, known)
    return display


def _date_from_default_args(
    dag_id: str, name: str, value: datetime | None, default_args: Mapping[str, Any]
) -> datetime | None:
    """As in Airflow, ``default_args["start_date"]`` is the DAG's when it sets none."""
    given = default_args.get(name)
    if given is None:
        return value
    if value is None:
        return given  # type: ignore[no-any-return]
    if given != value:
        raise DagDefinitionError(
            f"DAG {dag_id!r}: default_args {name} {given!r} differs from the DAG's {name} "
            f"{value!r}; per-task {name} is not supported yet"
        )
    return value


class DagTestRunner(Protocol):
    """Runs ``dag.test()``: the engine's, registered by the ``airloop`` package (the
    authoring layer does not import the engine)."""

    def test(self, dag: DAG, **options: Any) -> Any: ...

    async def atest(self, dag: DAG, **options: Any) -> Any: ...


_test_runners: list[DagTestRunner] = []


def register_test_runner(runner: DagTestRunner) -> None:
    _test_runners[:] = [runner]


def _test_runner() -> DagTestRunner:
    if not _test_runners:
        raise RuntimeError("dag.test() needs the airloop engine: import airloop first")
    return _test_runners[0]


class DAG:
    """A workflow. Use as a context manager; tasks created inside belong to it."""

    #: Tuples of callables (a callable, a list or a notifier may be given or set).
    on_success_callback = DagCallbackAttribute()
    on_failure_callback = DagCallbackAttribute()

    def __init__(
        self,
        dag_id: str,
        *,
        schedule: str | timedelta | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
        timezone: str | None = None,
        max_active_runs: int = 16,
        dagrun_timeout: timedelta | None = None,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        max_active_tasks: int | None = None,
        tags: Sequence[str] = (),
        doc: str | None = None,
        description: str | None = None,
        auto_register: bool = True,
        doc_md: str | None = None,
        fail_fast: bool = False,
        on_success_callback: Any = None,
        on_failure_callback: Any = None,
        **airflow: Any,
    ) -> None:
        self.dag_id = check_id("dag_id", dag_id)
        # DAG callbacks, run by the engine once the run's final state is written.
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.template_settings = pop_template_settings(dag_id, airflow)
        self.display: dict[str, Any] = _check_dag_args(dag_id, airflow)
        if doc is not None and doc_md is not None:
            raise DagDefinitionError(f"DAG {dag_id!r}: give doc or doc_md, not both")
        default_args = dict(default_args or {})
        start_date = _date_from_default_args(dag_id, "start_date", start_date, default_args)
        end_date = _date_from_default_args(dag_id, "end_date", end_date, default_args)
        if schedule is not None and not isinstance(schedule, (str, timedelta)):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: schedule must be a cron string, a preset, a timedelta or None"
            )
        if start_date is not None and not isinstance(start_date, datetime):
            raise DagDefinitionError(f"DAG {dag_id!r}: start_date must be a datetime")
        if max_active_tasks is not None and (
            not isinstance(max_active_tasks, int) or max_active_tasks < 1
        ):
            raise DagDefinitionError(
                f"DAG {dag_id!r}: max_active_tasks must be a positive integer, got {max_active_tasks!r}"
            )
        for name, value in (("start_date", start_date), ("end_date", end_date)):
            if value is not None and value.tzinfo is None:
                raise DagDefinitionError(
                    f"DAG {dag_id!r}: {name} must be timezone-aware "
                    "(e.g. datetime(2026, 1, 1, tzinfo=ZoneInfo('UTC')))"
                )
        zone = timezone
        if zone is None and isinstance(getattr(start_date, "tzinfo", None), ZoneInfo):
            zone = start_date.tzinfo.key  # type: ignore[union-attr]
        try:
            self.timezone = ZoneInfo(zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise DagDefinitionError(f"DAG {dag_id!r}: unknown timezone {timezone!r}") from None
        if max_active_runs < 1:
            raise DagDefinitionError(f"DAG {dag_id!r}: max_active_runs must be >= 1")
        self.end_date = end_date
        self.catchup = catchup
        self.max_active_runs = max_active_runs
        self.dagrun_timeout = dagrun_timeout
        self.schedule = schedule
        self.start_date = start_date
        try:
            self.timetable = parse_schedule(schedule, start_date=start_date, tz=self.timezone)
        except ScheduleError as exc:
            raise DagDefinitionError(f"DAG {dag_id!r}: {exc}") from None
        if self.timetable is not None and start_date is None:
            raise DagDefinitionError(f"DAG {dag_id!r}: a scheduled DAG needs a start_date")
        runs_limit = None if self.timetable is None else self.timetable.active_runs_limit
        if runs_limit is not None and max_active_runs > runs_limit:
            raise DagDefinitionError(
                f"DAG {dag_id!r}: invalid max_active_runs={max_active_runs}: schedule "
                f"{schedule!r} requires max_active_runs <= {runs_limit} (as in Airflow)"
            )
        self.default_args: dict[str, Any] = default_args
        #: Descriptive default_args (owner...) every task inherits for display.
        self.display_defaults: dict[str, Any] = check_default_args(dag_id, default_args)
        try:
            self.params = ParamsSpec(params)
        except ParamValidationError as exc:
            raise ParamValidationError(f"DAG {dag_id!r}: {exc}") from None
        self.max_active_tasks = max_active_tasks
        #: Airflow's fail_fast: a failed task stops the others (see the planner).
        self.fail_fast = bool(fail_fast)
        self.tags = list(tags)
        self.doc = doc if doc is not None else doc_md
        self.description = description
        self.task_dict: dict[str, AbstractOperator] = {}
        #: The group tree (the root is unnamed), and every named group by its full id.
        self.task_group: TaskGroup = TaskGroup.root(self)
        self.task_group_dict: dict[str, TaskGroup] = {}
        #: Edge labels for a UI: ``edge_info[upstream][downstream] == {"label": ...}``.
        self.edge_info: dict[str, dict[str, dict[str, str]]] = {}
        self._suffixes: dict[str, int] = {}
        self._token: contextvars.Token[DAG | None] | None = None
        frame = sys._getframe(1)
        self.fileloc: str = frame.f_code.co_filename
        self.lineno: int = frame.f_lineno
        # Airflow's auto_register: False means only a module global is loaded.
        self.auto_register = bool(auto_register)
        registry = _registry.get()
        if registry is not None and self.auto_register:
            registry.append(self)

    # -- building -------------------------------------------------------------------

    def __enter__(self) -> DAG:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def add_task(self, op: AbstractOperator) -> None:
        if op.task_id in self.task_dict:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r} already has a task with id {op.task_id!r}"
            )
        if op.task_id in self.task_group_dict:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r}: task id {op.task_id!r} is already the id of a task group"
            )
        self.task_dict[op.task_id] = op
        group = getattr(op, "task_group", None) or self.task_group
        group.children[op.task_id] = op

    def unique_task_id(self, base: str, group: TaskGroup | None = None) -> str:
        """``base``, or ``base__1``, ``base__2``... when a ``@task`` is called again.

        Unique within ``group``: the id returned is the task's own, before the group's prefix.
        """
        group = group or self.task_group
        full = group.child_id(base)
        if full not in self.task_dict and full not in self.task_group_dict:
            return base
        n = self._suffixes.get(full, 0) + 1
        while (candidate := group.child_id(f"{base}__{n}")) in self.task_dict or (
            candidate in self.task_group_dict
        ):
            n += 1
        self._suffixes[full] = n
        return f"{base}__{n}"

    def set_edge_info(
        self, upstream_task_id: str, downstream_task_id: str, info: dict[str, str]
    ) -> None:
        """Describe the edge between two tasks (its ``Label``), for display."""
        self.edge_info.setdefault(upstream_task_id, {})[downstream_task_id] = dict(info)

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict[str, str]:
        return dict(self.edge_info.get(upstream_task_id, {}).get(downstream_task_id, {}))

    # -- reading --------------------------------------------------------------------

    @property
    def tasks(self) -> list[AbstractOperator]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def get_task(self, task_id: str) -> AbstractOperator:
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise DagDefinitionError(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    def test(
        self,
        logical_date: datetime | None = None,
        conf: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        **options: Any,
    ) -> Any:
        """Run this DAG once, in this process, as ``airflow dags test`` does.

        A throwaway SQLite database (in a temporary folder, removed afterwards) and the
        async engine; ``test_mode`` is True in the context. Prints one line per task
        instance and returns a ``DagTestResult`` (run state, task states, XComs).
        ``logical_date`` defaults to now. Inside a running event loop use
        ``await dag.atest(...)``. ``options``: ``settings=``, ``output=``, ``quiet=``.
        """
        return _test_runner().test(
            self, logical_date=logical_date, conf=conf, params=params, run_id=run_id, **options
        )

    async def atest(
        self,
        logical_date: datetime | None = None,
        conf: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        **options: Any,
    ) -> Any:
        """``dag.test()`` for async code: runs on the caller's event loop."""
        return await _test_runner().atest(
            self, logical_date=logical_date, conf=conf, params=params, run_id=run_id, **options
        )

    def validate(self) -> None:
        """Raise CycleError (naming the cycle) if the tasks do not form a DAG, and
        DagDefinitionError for a fail_fast DAG with a task whose trigger rule is not
        all_success (teardowns aside), as Airflow does."""
        self.topological_order()
        if self.fail_fast:
            for op in self.task_dict.values():
                if op.trigger_rule not in (
                    TriggerRule.ALL_SUCCESS,
                    TriggerRule.ALL_DONE_SETUP_SUCCESS,
                ):
                    raise DagDefinitionError(
                        f"DAG {self.dag_id!r} has fail_fast=True: its tasks can only have "
                        f"trigger_rule all_success (or be teardowns); task {op.task_id!r} "
                        f"has {op.trigger_rule.value!r}"
                    )

    def topological_order(self) -> list[str]:
        indegree = {t: len(op.upstream_task_ids) for t, op in self.task_dict.items()}
        ready = [t for t, n in indegree.items() if n == 0]
        order: list[str] = []
        while ready:
            t = ready.pop()
            order.append(t)
            for down in sorted(self.task_dict[t].downstream_task_ids):
                indegree[down] -= 1
                if indegree[down] == 0:
                    ready.append(down)
        if len(order) < len(self.task_dict):
            raise CycleError(f"DAG {self.dag_id!r} has a cycle: {' -> '.join(self._find_cycle())}")
        return order

    def _find_cycle(self) -> list[str]:
        state: dict[str, int] = {}  # 1 = on the path, 2 = done
        path: list[str] = []

        def visit(t: str) -> list[str] | None:
            state[t] = 1
            path.append(t)
            for down in sorted(self.task_dict[t].downstream_task_ids):
                if state.get(down) == 1:
                    return [*path[path.index(down) :], down]
                if down not in state and (found := visit(down)):
                    return found
            path.pop()
            state[t] = 2
            return None

        for t in sorted(self.task_dict):
            if t not in state and (found := visit(t)):
                return found
        return ["?"]  # pragma: no cover - only called when a cycle exists

    def priority_weights(self) -> dict[str, int]:
        """Each task's effective priority under its weight rule (Airflow's semantics).

        ``downstream`` (the default) adds the weights of every descendant, ``upstream`` of
        every ancestor, ``absolute`` uses the task's own. Ancestor/descendant sets are
        bitmasks so a 10,000-task chain costs milliseconds, not a quadratic walk.
        """
        order = self.topological_order()
        index = {t: i for i, t in enumerate(order)}
        own = [self.task_dict[t].settings.priority_weight for t in order]
        uniform = own[0] if own and all(w == own[0] for w in own) else None

        def total(mask: int) -> int:
            if uniform is not None:
                return uniform * mask.bit_count()
            return sum(own[i] for i in range(mask.bit_length()) if mask >> i & 1)

        below = [0] * len(order)
        for t in reversed(order):
            mask = 1 << index[t]
            for d in self.task_dict[t].downstream_task_ids:
                mask |= below[index[d]]
            below[index[t]] = mask
        above = [0] * len(order)
        for t in order:
            mask = 1 << index[t]
            for u in self.task_dict[t].upstream_task_ids:
                mask |= above[index[u]]
            above[index[t]] = mask
        out = {}
        for t, op in self.task_dict.items():
            i = index[t]
            rule = op.settings.weight_rule
            if rule == "downstream":
                out[t] = total(below[i])
            elif rule == "upstream":
                out[t] = total(above[i])
            else:
                out[t] = own[i]
        return out

    def __repr__(self) -> str:
        return f"<DAG {self.dag_id!r}: {len(self.task_dict)} tasks>"


_DAG_NAMES = frozenset(
    p.name for p in inspect.signature(DAG.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
) | {"dag_id"}
