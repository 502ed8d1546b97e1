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
from typing import TYPE_CHECKING, Any, NoReturn, overload

from airloop.authoring.airflow_args import unknown_argument
from airloop.authoring.dependency import DependencyMixin
from airloop.authoring.operator import (
    DAG_LEVEL_DEFAULT_ARGS,
    AbstractOperator,
    check_default_args,
)
from airloop.exceptions import DagDefinitionError, DuplicateTaskIdError

if TYPE_CHECKING:
    from airloop.authoring.dag import DAG

# No '.': it joins a group's id to its children's.
_GROUP_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,200}$")

_current: contextvars.ContextVar[TaskGroup | None] = contextvars.ContextVar(
    "airloop_current_task_group", default=None
)


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

    def _mapped(self) -> NoReturn:
        raise DagDefinitionError(
            f"@task_group {self.function.__name__!r}: mapped task groups (.partial(), "
            ".expand(), .expand_kwargs()) are not supported yet; map the tasks inside the "
            "group instead"
        )

    def partial(self, **kwargs: Any) -> NoReturn:
        self._mapped()

    def expand(self, **kwargs: Any) -> NoReturn:
        self._mapped()

    def expand_kwargs(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._mapped()


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
