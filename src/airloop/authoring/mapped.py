"""Dynamic task mapping: ``.partial(...).expand(...)``, expanded at run time."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airloop.authoring.airflow_args import split_task_args
from airloop.authoring.expand_input import (
    MappedArgument,
    PendingBound,
    PendingOperator,
    dependencies,
    fill_slots,
    finish,
    has_slots,
    is_lazy,
    length,
    map_source,
    raw_item,
    reject_in_plain_arguments,
    to_slots,
)
from airloop.authoring.operator import (
    NOTSET,
    SETTING_NAMES,
    AbstractOperator,
    BaseOperator,
    with_xcoms,
)
from airloop.authoring.xcom import (
    XCOM_RETURN_KEY,
    TaskXComs,
    XComSnapshot,
    capture_xcoms,
)
from airloop.authoring.xcom_arg import (
    OutputLookup,
    XComArg,
    iter_xcom_args,
    resolve_xcom_args,
)
from airloop.core.specs import MapSource
from airloop.exceptions import DagDefinitionError, FailTask

if TYPE_CHECKING:
    from airloop.authoring.taskgroup import MappedTaskGroup


class MapFunctionError(Exception):
    """A ``.map()`` function raised while a mapped instance's arguments were bound."""


class OperatorFactory(Protocol):
    """Builds one concrete operator for one map index (outside any DAG)."""

    name: str
    #: The operator class the instances are (recorded in task_instance.operator).
    operator_name: str

    def check_names(self, names: Iterable[str]) -> None: ...

    @property
    def is_async(self) -> bool:
        """Are the operators it builds run as coroutines?"""
        ...

    def unknown_name(self, names: Iterable[str]) -> str | None:
        """The first of ``names`` the operator or function does not take (expand_kwargs)."""
        ...

    def own_names(self) -> frozenset[str]:
        """Arguments the operator or function takes itself (they are never Airflow's)."""
        ...

    def __call__(self, task_id: str, kwargs: dict[str, Any]) -> BaseOperator: ...


class _ClassFactory:
    def __init__(self, cls: type[BaseOperator]) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.operator_name = cls.__name__

    def check_names(self, names: Iterable[str]) -> None:
        return  # the operator's __init__ reports unknown names when it is built

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.cls.execute)

    def unknown_name(self, names: Iterable[str]) -> str | None:
        own = self.own_names()
        return next((n for n in names if n not in own), None)

    def own_names(self) -> frozenset[str]:
        names: set[str] = set()
        for klass in self.cls.__mro__:
            if klass is BaseOperator:
                break
            if "__init__" in vars(klass):
                params = inspect.signature(vars(klass)["__init__"]).parameters.values()
                names.update(
                    p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                )
        return frozenset(names)

    def __call__(self, task_id: str, kwargs: dict[str, Any]) -> BaseOperator:
        from airloop.authoring.dag import detached

        with detached():
            return self.cls(task_id=task_id, **kwargs)


def operator_factory(cls: type[BaseOperator]) -> OperatorFactory:
    return _ClassFactory(cls)


def _split(
    task_id: str, kwargs: Mapping[str, Any], factory: OperatorFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(task settings, descriptive Airflow arguments, what the operator/function gets).

    Airflow-only arguments are checked here, when the DAG is defined, unless the
    operator or function takes an argument of that name itself.
    """
    settings = {k: v for k, v in kwargs.items() if k in SETTING_NAMES}
    own = factory.own_names()
    airflow = {k: v for k, v in kwargs.items() if k not in SETTING_NAMES and k not in own}
    display, not_airflow = split_task_args(f"task {task_id!r}", airflow)
    checked = set(airflow) - set(not_airflow)
    rest = {k: v for k, v in kwargs.items() if k not in SETTING_NAMES and k not in checked}
    return settings, display, rest


class OperatorPartial:
    """The fixed half of a mapped task; ``.expand()`` or ``.expand_kwargs()`` supplies what varies."""

    def __init__(self, factory: OperatorFactory, kwargs: Mapping[str, Any]) -> None:
        self.factory = factory
        self.kwargs = dict(kwargs)

    def _build(
        self, mapped: Mapping[str, Any], kwargs_source: Any, group: Any = None
    ) -> MappedOperator:
        kwargs = dict(self.kwargs)
        task_id = kwargs.pop("task_id", NOTSET)
        if task_id is NOTSET:
            raise DagDefinitionError(f"{self.factory.name}.partial() needs a task_id")
        return MappedOperator(
            task_id=task_id,
            dag=kwargs.pop("dag", None),
            doc=kwargs.pop("doc", None),
            task_group=kwargs.pop("task_group", None),
            factory=self.factory,
            partial_kwargs=kwargs,
            expand_input=mapped,
            kwargs_source=kwargs_source,
            group=group,
        )

    def expand(self, **mapped: Any) -> MappedOperator:
        return self._build(mapped, NOTSET)

    def expand_kwargs(self, source: Any, /) -> MappedOperator:
        """One instance per dict of ``source`` (a list of dicts, or a task's output)."""
        return self._build({}, source)

    def in_group(self, group: MappedTaskGroup) -> MappedOperator:
        """The task made inside mapped task group ``group``: mapped over its sources."""
        return self._build({}, NOTSET, group)


#: The name the planner knows an expand_kwargs() source by.
KWARGS_SOURCE = "expand_kwargs"


class MappedOperator(AbstractOperator):
    """A task that runs once per element (or combination of elements) of its expand() input,
    or once per dict of its expand_kwargs() source; or a task made inside a mapped task
    group (``group``), run once per element of the group's expansion (ADR 0029)."""

    is_mapped: ClassVar[bool] = True

    def __init__(
        self,
        *,
        task_id: str,
        dag: Any,
        doc: str | None,
        factory: OperatorFactory,
        partial_kwargs: Mapping[str, Any],
        expand_input: Mapping[str, Any],
        task_group: Any = None,
        kwargs_source: Any = NOTSET,
        group: MappedTaskGroup | None = None,
    ) -> None:
        if group is None:
            from airloop.authoring.taskgroup import mapping_for

            enclosing = mapping_for(task_id, dag, task_group)
            if enclosing is not None:
                raise DagDefinitionError(
                    f"task {task_id!r}: a mapped task (.expand(), .expand_kwargs()) inside "
                    f"the mapped task group {enclosing.group_id!r} is nested mapping, which "
                    "is not supported; make it a plain task of the group"
                )
        settings, display, rest = _split(task_id, partial_kwargs, factory)
        if group is not None:
            rest = to_slots(f"task {task_id!r}", rest, group)
            reject_in_plain_arguments(f"task {task_id!r}", rest)
            factory.check_names(rest)
        elif kwargs_source is NOTSET:
            reject_in_plain_arguments(f"task {task_id!r}: partial()", rest)
            if not expand_input:
                raise DagDefinitionError(f"task {task_id!r}: expand() needs at least one argument")
            for name, value in expand_input.items():
                if name in SETTING_NAMES:
                    raise DagDefinitionError(
                        f"task {task_id!r}: cannot expand over the task setting {name!r}"
                    )
                if name in rest:
                    raise DagDefinitionError(
                        f"task {task_id!r}: {name!r} is given to both partial() and expand()"
                    )
                if isinstance(value, XComArg) and value.path:
                    raise DagDefinitionError(
                        f"task {task_id!r}: expand({name}=...) over a subscripted output "
                        f"({value!r}) is not supported yet; return the list from a task instead"
                    )
                if isinstance(value, MappedArgument):
                    raise DagDefinitionError(
                        f"task {task_id!r}: expand({name}=...) over {value!r} is nested "
                        "mapping (a mapped task inside a mapped task group): not supported"
                    )
                if not isinstance(value, (list, tuple, dict, XComArg)):
                    raise DagDefinitionError(
                        f"task {task_id!r}: expand({name}=...) needs a list, tuple, dict or a "
                        f"task's output, got {type(value).__name__}"
                    )
            factory.check_names([*rest, *expand_input])
        else:
            reject_in_plain_arguments(f"task {task_id!r}: partial()", rest)
            if not isinstance(kwargs_source, (list, tuple, XComArg)):
                raise DagDefinitionError(
                    f"task {task_id!r}: expand_kwargs() needs a list of dicts or a task's "
                    f"output, got {type(kwargs_source).__name__}"
                )
            factory.check_names(rest)
        super().__init__(
            task_id=task_id,
            dag=dag,
            settings=settings,
            doc=doc,
            display=display,
            task_group=task_group,
        )
        if (self.task_group.mapping if self.task_group is not None else None) is not group:
            raise DagDefinitionError(f"task {task_id!r}: not made in its mapped task group")
        #: The mapped task group the task was made in (None: mapped by its own expand()).
        self.group = group
        self.factory = factory
        self.partial_kwargs = rest
        self.expand_input = dict(expand_input)
        #: The expand_kwargs() source (NOTSET: the task uses expand()).
        self.kwargs_source = kwargs_source
        if kwargs_source is not NOTSET and not isinstance(kwargs_source, XComArg):
            for i, item in enumerate(kwargs_source):
                if isinstance(item, XComArg) or any(True for _ in iter_xcom_args(item)):
                    raise DagDefinitionError(
                        f"task {task_id!r}, map index {i}: expand_kwargs() takes a list of "
                        "literal dicts or one task's output (a list of dicts), not task "
                        "outputs inside the list"
                    )
                self._check_item(i, item, DagDefinitionError)
        self._lazy = any(is_lazy(v) for v in self._sources().values())
        self._slots = group is not None and has_slots(rest)
        for dep in self.xcom_dependencies():
            dep.set_downstream(self)

    @property
    def is_async(self) -> bool:
        raise TypeError("ask the materialized operator, not the mapped one")

    @property
    def can_resume(self) -> bool:
        cls = getattr(self.factory, "cls", None)
        return bool(cls is not None and cls.resumable)

    def xcom_dependencies(self) -> list[AbstractOperator]:
        found = [op for value in self._sources().values() for op in dependencies(value)]
        found += [arg.operator for arg in iter_xcom_args(self.partial_kwargs)]
        return list({id(op): op for op in found}.values())

    def _sources(self) -> dict[str, Any]:
        if self.group is not None:
            return self.group.sources()
        if self.kwargs_source is NOTSET:
            return self.expand_input
        return {KWARGS_SOURCE: self.kwargs_source}

    def map_sources(self) -> tuple[MapSource, ...]:
        return tuple(map_source(name, value) for name, value in self._sources().items())

    def _check_item(self, map_index: int, item: Any, error: type[Exception]) -> dict[str, Any]:
        """One expand_kwargs() element: a dict of known argument names."""
        where = f"task {self.task_id!r}, map index {map_index}"
        if not isinstance(item, dict):
            raise error(f"{where}: expand_kwargs() needs a dict, got {type(item).__name__}")
        for name in item:
            if not isinstance(name, str):
                raise error(f"{where}: expand_kwargs() argument names must be strings: {name!r}")
            if name in SETTING_NAMES:
                raise error(f"{where}: cannot expand over the task setting {name!r}")
            if name in self.partial_kwargs:
                raise error(f"{where}: {name!r} is given to both partial() and expand_kwargs()")
        unknown = self.factory.unknown_name(item)
        if unknown is not None:
            raise error(
                f"{where}: expand_kwargs() gave an unknown argument {unknown!r} "
                f"({self.factory.name} does not take it)"
            )
        return item

    def rebuild(self, bound: Any) -> BaseOperator:
        xcoms = None
        if isinstance(bound, _WithXComs):
            bound, xcoms = bound.bound, bound.xcoms
        op: BaseOperator
        if isinstance(bound, PendingBound):
            op = PendingOperator(node=self, bound=bound, is_async=self.factory.is_async)
        else:
            op = self.factory(self.task_id, dict(bound))
        return with_xcoms(op, xcoms, copied=True)

    def bind(self, map_index: int, lookup: OutputLookup) -> Any:
        # Only the chosen element of each expand() argument is fetched (and copied):
        # 10,000 instances mapped over one list must not each copy the whole list.
        sources = self._sources()
        sizes = [(name, length(self.task_id, value, lookup)) for name, value in sources.items()]
        raw: dict[str, Any] = {}
        rest_index = map_index
        # Row-major: the last expand() argument varies fastest (as in Airflow).
        for name, size in reversed(sizes):
            if not size:
                raise IndexError(f"{self.task_id!r}: expand({name}=...) is empty")
            rest_index, i = divmod(rest_index, size)
            raw[name] = raw_item(self.task_id, sources[name], i, lookup)
        if rest_index:
            raise IndexError(f"map index {map_index} is out of range for {self.task_id!r}")
        if self.group is not None:
            # The group's tasks give this instance their same-index outputs.
            lookup = SameIndexLookup(lookup, self.group.task_ids(), map_index)
        partial = resolve_xcom_args(self.partial_kwargs, lookup)
        bound: Any = (
            PendingBound(map_index, raw, partial)
            if self._lazy
            else self._arguments(map_index, raw, partial)
        )
        # The upstream XComs travel along when the code may pull them (ti.xcom_pull).
        if getattr(self.factory, "may_pull", True):
            xcoms = capture_xcoms(self, lookup)
            if xcoms is not None:
                return _WithXComs(bound, xcoms)
        return bound

    def _arguments(
        self, map_index: int, raw: Mapping[str, Any], partial: dict[str, Any]
    ) -> dict[str, Any]:
        """The instance's keyword arguments; ``.map()`` functions run here (user code)."""
        sources = self._sources()
        try:
            chosen = {name: finish(sources[name], value) for name, value in raw.items()}
        except Exception as exc:
            if not self._lazy:
                raise
            raise MapFunctionError(
                f"task {self.task_id!r}, map index {map_index}: its .map() function "
                f"raised {type(exc).__name__}: {exc}"
            ) from exc
        if self.group is not None:
            return self._group_arguments(map_index, chosen, partial)
        if self.kwargs_source is not NOTSET:
            chosen = dict(self._check_item(map_index, chosen[KWARGS_SOURCE], FailTask))
        return {**partial, **chosen}

    def _group_arguments(
        self, map_index: int, chosen: dict[str, Any], partial: dict[str, Any]
    ) -> dict[str, Any]:
        """The instance's arguments: the group's arguments for ``map_index`` in place of
        the ``MappedArgument``s the task was given."""
        group = self.group
        assert group is not None
        where = f"task {self.task_id!r}, map index {map_index}"
        element = chosen
        if group.kwargs_source is not NOTSET:
            element = chosen[KWARGS_SOURCE]
            if not isinstance(element, dict):
                raise FailTask(
                    f"{where}: the group's expand_kwargs() needs a dict, "
                    f"got {type(element).__name__}"
                )
            unknown = next((n for n in element if n not in group.kwargs_names), None)
            if unknown is not None:
                raise FailTask(
                    f"{where}: the group's expand_kwargs() gave {unknown!r}, which is not "
                    f"one of its mapped parameters ({', '.join(sorted(group.kwargs_names))})"
                )
        if not self._slots:
            return partial
        try:
            filled: dict[str, Any] = fill_slots(where, partial, element)
        except LookupError as exc:
            raise FailTask(str(exc.args[0])) from None
        return filled

    def finish_pending(self, bound: PendingBound) -> BaseOperator:
        """The real operator of a PendingOperator: ``.map()`` functions applied. User
        code: the runner calls it off the loop."""
        kwargs = self._arguments(bound.map_index, bound.raw, dict(bound.partial))
        return self.factory(self.task_id, kwargs)


@dataclass(frozen=True, slots=True)
class _WithXComs:
    """What ``bind`` returns for a mapped instance that may pull XComs."""

    bound: Any
    xcoms: XComSnapshot


class SameIndexLookup:
    """An ``OutputLookup`` for instance ``map_index`` of a task in a mapped task group:
    the group's tasks (``same``) give their instance ``map_index``'s output, not the list
    of every instance's; other tasks are looked up as usual."""

    __slots__ = ("_lookup", "_map_index", "_same")

    def __init__(self, lookup: OutputLookup, same: frozenset[str], map_index: int) -> None:
        self._lookup = lookup
        self._same = same
        self._map_index = map_index

    def __call__(self, task_id: str) -> Any:
        if task_id in self._same:
            return self.xcoms(task_id).value(XCOM_RETURN_KEY, None)
        return self._lookup(task_id)

    def length(self, task_id: str) -> int:
        return self._lookup.length(task_id)

    def item(self, task_id: str, index: int) -> Any:
        return self._lookup.item(task_id, index)

    def xcoms(self, task_id: str) -> TaskXComs:
        if task_id in self._same:
            return self._lookup.instance_xcoms(task_id, self._map_index)
        return self._lookup.xcoms(task_id)

    def instance_xcoms(self, task_id: str, map_index: int) -> TaskXComs:
        return self._lookup.instance_xcoms(task_id, map_index)
