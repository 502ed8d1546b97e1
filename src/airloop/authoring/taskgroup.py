"""Task groups: ``TaskGroup`` and ``@task_group``, with Airflow's id prefixing and wiring.

A group is a node of a tree kept on the DAG (``dag.task_group`` is the root,
``dag.task_group_dict`` every other group by id) so a UI can draw it; it changes
nothing about how tasks run. What it does change, as in Airflow:

- task ids: a task made inside group ``g`` is ``g.<task_id>`` (``prefix_group_id``);
- defaults: the group's ``default_args`` merge over its parent's and the DAG's;
- wiring: ``group >> x`` links the group's leaves (its tasks with no downstream
  inside it) and ``x >> group`` its roots (no upstream inside it), at the time the
  ``>>`` is written.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from airloop.authoring.airflow_args import unknown_argument
from airloop.authoring.dependency import DependencyMixin
from airloop.authoring.expand_input import NOFILL, MappedArgument
from airloop.authoring.operator import (
    DAG_LEVEL_DEFAULT_ARGS,
    NOTSET,
    AbstractOperator,
    check_default_args,
)
from airloop.authoring.xcom_arg import XComArg, iter_xcom_args
from airloop.exceptions import DagDefinitionError, DuplicateTaskIdError

if TYPE_CHECKING:
    from airloop.authoring.dag import DAG

# No '.': it joins a group's id to its children's.
_GROUP_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,200}$")

_current: contextvars.ContextVar[TaskGroup | None] = contextvars.ContextVar(
    "airloop_current_task_group", default=None
)


def mapping_for(task_id: str, dag: Any, explicit: Any) -> MappedTaskGroup | None:
    """The mapped task group a task made now (with these ``dag=`` and ``task_group=``)
    would be in; cheap when no group's ``with`` block is open and none is given."""
    if explicit is None and _current.get() is None:
        return None
    from airloop.authoring.dag import current_dag

    dag = dag or getattr(explicit, "dag", None) or current_dag()
    if dag is None:
        return None
    group = group_for(dag, explicit, f"task {task_id!r}")
    return None if group is None else group.mapping


def current_group(dag: DAG) -> TaskGroup:
    """The group whose ``with`` block is open for ``dag``, else the DAG's root group."""
    group = _current.get()
    if group is not None and group.dag is dag:
        return group
    return dag.task_group


def group_for(dag: DAG | None, explicit: TaskGroup | None, what: str) -> TaskGroup | None:
    """The group a new node of ``dag`` belongs to (None for a node outside any DAG)."""
    if dag is None:
        return None
    if explicit is None:
        return current_group(dag)
    if not isinstance(explicit, TaskGroup):
        raise DagDefinitionError(f"{what}: task_group must be a TaskGroup, got {explicit!r}")
    if explicit.dag is not dag:
        raise DagDefinitionError(
            f"{what}: task group {explicit.group_id!r} belongs to DAG {explicit.dag.dag_id!r}, "
            f"not {dag.dag_id!r}"
        )
    return explicit


class TaskGroup(DependencyMixin):
    """A named set of tasks (and groups), drawn as one box; Airflow's ``TaskGroup``.

    Use as a context manager: tasks and groups created inside belong to it. Its
    ``ui_color``, ``ui_fgcolor`` and ``group_display_name`` are descriptive (stored
    in ``display`` for a UI); ``tooltip`` too.
    """

    def __init__(
        self,
        group_id: str,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: Mapping[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str | None = None,
        ui_fgcolor: str | None = None,
        add_suffix_on_collision: bool = False,
        group_display_name: str | None = None,
    ) -> None:
        from airloop.authoring.dag import current_dag

        if not isinstance(group_id, str) or not _GROUP_ID_RE.match(group_id):
            raise DagDefinitionError(
                f"invalid group_id {group_id!r}: use 1-200 letters, digits, '_' or '-' "
                "(a '.' joins a group's id to its tasks' ids)"
            )
        if parent_group is not None:
            if dag is not None and dag is not parent_group.dag:
                raise DagDefinitionError(
                    f"TaskGroup {group_id!r}: parent_group belongs to another DAG than dag="
                )
            dag = parent_group.dag
        else:
            dag = dag if dag is not None else current_dag()
            if dag is None:
                raise DagDefinitionError(
                    f"TaskGroup {group_id!r} must be created inside a DAG "
                    "('with DAG(...):'), or be given dag= or parent_group="
                )
            parent_group = current_group(dag)
        self.dag: DAG = dag
        self.parent_group: TaskGroup | None = parent_group
        self.prefix_group_id = bool(prefix_group_id)
        self._group_id: str | None = self._free_label(group_id, add_suffix_on_collision)
        full = self.group_id
        assert full is not None
        where = f"task group {full!r}"
        own = dict(default_args or {})
        for name in DAG_LEVEL_DEFAULT_ARGS:
            if name in own and own[name] != getattr(dag, name):
                raise DagDefinitionError(
                    f"{where}: default_args {name} {own[name]!r} differs from the DAG's; "
                    f"per-task {name} is not supported yet"
                )
        display_defaults = check_default_args(dag.dag_id, own, where=where)
        #: The group's default_args merged over its parents' (the DAG's are not included).
        self.default_args: dict[str, Any] = {**parent_group.default_args, **own}
        self.display_defaults: dict[str, Any] = {
            **parent_group.display_defaults,
            **display_defaults,
        }
        self.tooltip = str(tooltip or "")
        given = {
            "ui_color": ui_color,
            "ui_fgcolor": ui_fgcolor,
            "group_display_name": group_display_name,
        }
        self.display: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self.children: dict[str, AbstractOperator | TaskGroup] = {}
        self._tokens: list[contextvars.Token[TaskGroup | None]] = []
        #: The mapped task group this group is (or is inside of); None: not mapped.
        self.mapping: MappedTaskGroup | None = parent_group.mapping
        parent_group.children[full] = self
        dag.task_group_dict[full] = self

    @classmethod
    def root(cls, dag: DAG) -> TaskGroup:
        """The unnamed group every DAG has; top-level tasks and groups are its children."""
        group = cls.__new__(cls)
        group.dag = dag
        group.parent_group = None
        group.prefix_group_id = True
        group._group_id = None
        group.default_args = {}
        group.display_defaults = {}
        group.tooltip = ""
        group.display = {}
        group.children = {}
        group._tokens = []
        group.mapping = None
        return group

    def _free_label(self, label: str, add_suffix: bool) -> str:
        """``label``, or ``label__1``, ``label__2``... when it is taken and ``add_suffix``."""
        dag = self.dag
        self._group_id = label
        full = self.group_id
        taken_by = "task" if full in dag.task_dict else None
        if full in dag.task_group_dict:
            taken_by = "task group"
        if taken_by is None:
            return label
        if not add_suffix:
            raise DuplicateTaskIdError(
                f"DAG {dag.dag_id!r}: group_id {full!r} is already the id of a {taken_by}"
                " (pass add_suffix_on_collision=True to number it)"
            )
        n = 1
        while True:
            self._group_id = f"{label}__{n}"
            if self.group_id not in dag.task_dict and self.group_id not in dag.task_group_dict:
                return self._group_id
            n += 1

    # -- ids --------------------------------------------------------------------------

    @property
    def is_root(self) -> bool:
        return self._group_id is None

    @property
    def label(self) -> str | None:
        """The group's own id, without its parents' prefix."""
        return self._group_id

    @property
    def group_id(self) -> str | None:
        """The full id: prefixed by the parent's when the parent prefixes (Airflow's rule)."""
        parent = self.parent_group
        if parent is not None and parent.prefix_group_id and parent._group_id is not None:
            return parent.child_id(self._group_id or "")
        return self._group_id

    def child_id(self, label: str) -> str:
        """The id a child labelled ``label`` gets in this group."""
        group_id = self.group_id
        if self.prefix_group_id and group_id is not None:
            return f"{group_id}.{label}"
        return label

    # -- building ---------------------------------------------------------------------

    def __enter__(self) -> TaskGroup:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    # -- reading ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[AbstractOperator]:
        """Every task in the group and its subgroups, in the order they were made."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child
            else:
                yield child

    @property
    def roots(self) -> list[AbstractOperator]:
        """The group's tasks with no upstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if ids.isdisjoint(t.upstream_task_ids)]

    @property
    def leaves(self) -> list[AbstractOperator]:
        """The group's tasks with no downstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if ids.isdisjoint(t.downstream_task_ids)]

    def get_roots(self) -> list[AbstractOperator]:
        return self.roots

    def get_leaves(self) -> list[AbstractOperator]:
        return self.leaves

    def _not_empty(self, found: list[AbstractOperator]) -> list[AbstractOperator]:
        if not found:
            # Airflow links nothing here, which silently drops the dependency a >> g >> b.
            raise DagDefinitionError(
                f"task group {self.group_id!r} has no tasks: an edge to or from it would "
                "connect nothing (link it after its tasks are made)"
            )
        return found

    def edge_roots(self) -> list[AbstractOperator]:
        return self._not_empty(self.roots)

    def edge_leaves(self) -> list[AbstractOperator]:
        # Teardowns are ignored when linking from a group, as in Airflow.
        from airloop.authoring.setup_teardown import link_leaves

        return self._not_empty(link_leaves(list(self)))

    def effective_default_args(self) -> dict[str, Any]:
        """What a task made in this group inherits: the DAG's default_args, then the groups'."""
        return {**self.dag.default_args, **self.default_args}

    def effective_display_defaults(self) -> dict[str, Any]:
        return {**self.dag.display_defaults, **self.display_defaults}

    def describe(self) -> dict[str, Any]:
        """The group's tree as plain data (ids, tooltips, display), for a UI."""
        children: list[dict[str, Any]] = []
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                children.append(child.describe())
            else:
                children.append({"task_id": child.task_id})
        return {
            "id": self.group_id,
            "tooltip": self.tooltip,
            "display": dict(self.display),
            "children": children,
        }

    def __repr__(self) -> str:
        return f"<TaskGroup {self.group_id!r}: {len(self.children)} children>"


_GROUP_ARGS = frozenset(
    name for name in inspect.signature(TaskGroup.__init__).parameters if name != "self"
)


class TaskGroupDecorator:
    """A function that builds tasks, made into a group each time it is called."""

    def __init__(self, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
        name = getattr(fn, "__name__", repr(fn))
        if not callable(fn):
            raise DagDefinitionError(f"@task_group needs a function, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            raise DagDefinitionError(
                f"@task_group {name!r}: the function builds tasks when the DAG is defined; "
                "it cannot be async def (its tasks can)"
            )
        check_group_args(f"@task_group {name!r}", kwargs)
        self.function = fn
        self.kwargs = dict(kwargs)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Make the group and its tasks; return what the function returns, else the group.

        As in Airflow, a returned task or XComArg is what ``>>`` and downstream tasks
        bind to, so ``total(my_group(x))`` passes the group's result on.
        """
        from airloop.authoring.dag import current_dag

        name = self.function.__name__
        parent = self.kwargs.get("parent_group")
        dag = self.kwargs.get("dag") or (parent.dag if parent is not None else current_dag())
        if dag is None:
            raise DagDefinitionError(
                f"{name}() was called outside a DAG: call task groups inside 'with DAG(...):'"
            )
        try:
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"{name}(): {exc}") from None
        options: dict[str, Any] = {"add_suffix_on_collision": True, **self.kwargs}
        options.setdefault("group_id", name)
        options.setdefault("dag", dag)
        if "tooltip" not in options:
            options["tooltip"] = inspect.getdoc(self.function) or ""
        with TaskGroup(**options) as group:
            result = self.function(*args, **kwargs)
        return group if result is None else result

    def override(self, **kwargs: Any) -> TaskGroupDecorator:
        return TaskGroupDecorator(self.function, {**self.kwargs, **kwargs})

    # -- mapped task groups (ADR 0029) -------------------------------------------------

    def partial(self, **kwargs: Any) -> TaskGroupPartial:
        """``group.partial(fixed=...).expand(varying=[...])``: ``fixed`` is passed as is."""
        return TaskGroupPartial(self, kwargs)

    def expand(self, **mapped: Any) -> Any:
        """Map the whole group: its function is called once, each parameter in ``mapped``
        a ``MappedArgument``; every task made inside runs once per element."""
        return self.partial().expand(**mapped)

    def expand_kwargs(self, source: Any, /) -> Any:
        """One group instance per dict of ``source`` (a list of dicts, or a task's output)."""
        return self.partial().expand_kwargs(source)

    def _call_mapped(
        self, partial: Mapping[str, Any], mapped: Mapping[str, Any], kwargs_source: Any
    ) -> Any:
        from airloop.authoring.dag import current_dag

        name = self.function.__name__
        where = f"mapped task group {name!r}"
        parent = self.kwargs.get("parent_group")
        dag = self.kwargs.get("dag") or (parent.dag if parent is not None else current_dag())
        if dag is None:
            raise DagDefinitionError(
                f"{name}.expand() was called outside a DAG: call task groups inside "
                "'with DAG(...):'"
            )
        enclosing = parent if parent is not None else current_group(dag)
        if enclosing.mapping is not None:
            raise DagDefinitionError(
                f"{where}: it is inside the mapped task group {enclosing.mapping.group_id!r}; "
                "nested mapping (a mapped group in a mapped group) is not supported"
            )
        sig = inspect.signature(self.function)
        params = {
            p.name: p
            for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        options: dict[str, Any] = {"add_suffix_on_collision": True, **self.kwargs}
        options.setdefault("group_id", name)
        options.setdefault("dag", dag)
        if "tooltip" not in options:
            options["tooltip"] = inspect.getdoc(self.function) or ""
        arguments = dict(partial)
        if kwargs_source is NOTSET:
            _check_group_expand(where, mapped, partial, params, takes_any)
            names = list(mapped)
        else:
            _check_group_kwargs_source(where, kwargs_source, partial, params)
            names = [n for n in params if n not in partial]
        try:
            sig.bind(**arguments, **dict.fromkeys(names))
        except TypeError as exc:
            raise DagDefinitionError(f"{where}: {exc}") from None
        # The group id is known only once the group exists (a suffix may be added).
        group = MappedTaskGroup(
            expand_input=mapped,
            kwargs_source=kwargs_source,
            kwargs_names=frozenset(names),
            **options,
        )
        for arg in names:
            default = params[arg].default if arg in params else inspect.Parameter.empty
            arguments[arg] = MappedArgument(
                group,
                group.group_id or name,
                arg,
                default=NOFILL if default is inspect.Parameter.empty else default,
            )
        with group:
            result = self.function(**arguments)
        if not any(True for _ in group):
            raise DagDefinitionError(f"{where} made no tasks: there is nothing to map")
        return group if result is None else result


class TaskGroupPartial:
    """The fixed half of a mapped task group; ``.expand()`` or ``.expand_kwargs()`` maps it."""

    def __init__(self, decorator: TaskGroupDecorator, kwargs: Mapping[str, Any]) -> None:
        self.decorator = decorator
        self.kwargs = dict(kwargs)

    def expand(self, **mapped: Any) -> Any:
        return self.decorator._call_mapped(self.kwargs, mapped, NOTSET)

    def expand_kwargs(self, source: Any, /) -> Any:
        return self.decorator._call_mapped(self.kwargs, {}, source)


def _check_group_expand(
    where: str,
    mapped: Mapping[str, Any],
    partial: Mapping[str, Any],
    params: Mapping[str, inspect.Parameter],
    takes_any: bool,
) -> None:
    if not mapped:
        raise DagDefinitionError(f"{where}: expand() needs at least one argument")
    for name, value in mapped.items():
        if name not in params and not takes_any:
            raise DagDefinitionError(f"{where}: the function has no parameter {name!r}")
        if name in partial:
            raise DagDefinitionError(f"{where}: {name!r} is given to both partial() and expand()")
        _check_source(f"{where}: expand({name}=...)", value, (list, tuple, dict))


def _check_group_kwargs_source(
    where: str,
    source: Any,
    partial: Mapping[str, Any],
    params: Mapping[str, inspect.Parameter],
) -> None:
    _check_source(f"{where}: expand_kwargs()", source, (list, tuple))
    if isinstance(source, XComArg):
        return
    for i, item in enumerate(source):
        at = f"{where}, map index {i}"
        if not isinstance(item, dict):
            raise DagDefinitionError(
                f"{at}: expand_kwargs() needs a dict, got {type(item).__name__}"
            )
        if any(True for _ in iter_xcom_args(item)):
            raise DagDefinitionError(
                f"{at}: expand_kwargs() takes a list of literal dicts or one task's output "
                "(a list of dicts), not task outputs inside the list"
            )
        for name in item:
            if name not in params:
                raise DagDefinitionError(
                    f"{at}: expand_kwargs() gave {name!r}, not a parameter of the function"
                )
            if name in partial:
                raise DagDefinitionError(
                    f"{at}: {name!r} is given to both partial() and expand_kwargs()"
                )


def _check_source(where: str, value: Any, literal: tuple[type, ...]) -> None:
    if isinstance(value, MappedArgument):
        raise DagDefinitionError(
            f"{where}: mapping over a mapped task group's argument is nested mapping, "
            "which is not supported"
        )
    if isinstance(value, XComArg) and value.path:
        raise DagDefinitionError(
            f"{where}: mapping over a subscripted output ({value!r}) is not supported yet; "
            "return the list from a task instead"
        )
    if not isinstance(value, (*literal, XComArg)):
        kinds = " or ".join(t.__name__ for t in literal)
        raise DagDefinitionError(
            f"{where} needs a {kinds} or a task's output, got {type(value).__name__}"
        )


class MappedTaskGroup(TaskGroup):
    """A task group run once per element of its expansion (``@task_group``'s ``.expand()``,
    ``.partial().expand()``, ``.expand_kwargs()``; ADR 0029).

    Every task made inside is a mapped task over the group's sources; instance ``i`` of
    each gets element ``i`` of the group's arguments, and waits only for instance ``i``
    of the group's tasks upstream of it.
    """

    def __init__(
        self,
        *,
        expand_input: Mapping[str, Any],
        kwargs_source: Any,
        kwargs_names: frozenset[str],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.mapping = self
        #: The names an expand_kwargs() dict may give (the function's other parameters).
        self.kwargs_names = kwargs_names
        #: The group's expand() arguments by parameter name (empty with expand_kwargs()).
        self.expand_input: dict[str, Any] = dict(expand_input)
        #: The expand_kwargs() source (NOTSET: the group uses expand()).
        self.kwargs_source: Any = kwargs_source
        self._task_ids: frozenset[str] | None = None
        self._counted = 0

    def sources(self) -> dict[str, Any]:
        """What the group expands over, by the name the planner knows each source by."""
        from airloop.authoring.mapped import KWARGS_SOURCE

        if self.kwargs_source is NOTSET:
            return self.expand_input
        return {KWARGS_SOURCE: self.kwargs_source}

    def describe(self) -> dict[str, Any]:
        """As a group's, plus what it maps over (for a UI)."""
        return {**super().describe(), "mapped_over": sorted(self.sources())}

    def task_ids(self) -> frozenset[str]:
        """The ids of the tasks mapped with the group (worked out again only when the
        DAG has gained tasks since: binding asks once per instance)."""
        size = len(self.dag.task_dict)
        if self._task_ids is None or self._counted != size:
            self._task_ids = frozenset(t.task_id for t in self)
            self._counted = size
        return self._task_ids


def check_group_args(where: str, kwargs: Mapping[str, Any]) -> None:
    for name in kwargs:
        if name not in _GROUP_ARGS:
            raise unknown_argument(where, name, _GROUP_ARGS)


@overload
def task_group(python_callable: Callable[..., Any], /) -> TaskGroupDecorator: ...


@overload
def task_group(
    python_callable: None = None, /, **kwargs: Any
) -> Callable[[Callable[..., Any]], TaskGroupDecorator]: ...


def task_group(
    python_callable: Callable[..., Any] | None = None, /, **kwargs: Any
) -> TaskGroupDecorator | Callable[[Callable[..., Any]], TaskGroupDecorator]:
    """``@task_group`` or ``@task_group(group_id=..., default_args=..., tooltip=...)``."""
    if python_callable is not None:
        return TaskGroupDecorator(python_callable, kwargs)
    check_group_args("@task_group", kwargs)

    def wrap(fn: Callable[..., Any]) -> TaskGroupDecorator:
        return TaskGroupDecorator(fn, kwargs)

    return wrap
