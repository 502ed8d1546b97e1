"""Dynamic task mapping: ``.partial(...).expand(...)``, expanded at run time."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from airloop.authoring.airflow_args import split_task_args
from airloop.authoring.operator import (
    NOTSET,
    SETTING_NAMES,
    AbstractOperator,
    BaseOperator,
    with_xcoms,
)
from airloop.authoring.xcom import XComSnapshot, capture_xcoms
from airloop.authoring.xcom_arg import (
    OutputLookup,
    XComArg,
    as_sequence,
    iter_xcom_args,
    resolve_xcom_args,
)
from airloop.core.specs import MapSource
from airloop.exceptions import DagDefinitionError


class OperatorFactory(Protocol):
    """Builds one concrete operator for one map index (outside any DAG)."""

    name: str
    #: The operator class the instances are (recorded in task_instance.operator).
    operator_name: str

    def check_names(self, names: Iterable[str]) -> None: ...

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
    """The fixed half of a mapped task; ``.expand()`` supplies what varies."""

    def __init__(self, factory: OperatorFactory, kwargs: Mapping[str, Any]) -> None:
        self.factory = factory
        self.kwargs = dict(kwargs)

    def expand(self, **mapped: Any) -> MappedOperator:
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
        )


class MappedOperator(AbstractOperator):
    """A task that runs once per element (or combination of elements) of its expand() input."""

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
    ) -> None:
        settings, display, rest = _split(task_id, partial_kwargs, factory)
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
            if not isinstance(value, (list, tuple, dict, XComArg)):
                raise DagDefinitionError(
                    f"task {task_id!r}: expand({name}=...) needs a list, tuple, dict or a task's "
                    f"output, got {type(value).__name__}"
                )
        factory.check_names([*rest, *expand_input])
        super().__init__(
            task_id=task_id,
            dag=dag,
            settings=settings,
            doc=doc,
            display=display,
            task_group=task_group,
        )
        self.factory = factory
        self.partial_kwargs = rest
        self.expand_input = dict(expand_input)
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
        found = [arg.operator for arg in iter_xcom_args(self.expand_input)]
        found += [arg.operator for arg in iter_xcom_args(self.partial_kwargs)]
        return list({id(op): op for op in found}.values())

    def map_sources(self) -> tuple[MapSource, ...]:
        out = []
        for name, value in self.expand_input.items():
            if isinstance(value, XComArg):
                out.append(MapSource(name, upstream=value.operator.task_id))
            else:
                out.append(MapSource(name, literal_length=len(value)))
        return tuple(out)

    def rebuild(self, bound: Any) -> BaseOperator:
        if isinstance(bound, _WithXComs):
            return with_xcoms(self.factory(self.task_id, dict(bound.kwargs)), bound.xcoms)
        return self.factory(self.task_id, dict(bound))

    def bind(self, map_index: int, lookup: OutputLookup) -> Any:
        # Only the chosen element of each expand() argument is fetched (and copied):
        # 10,000 instances mapped over one list must not each copy the whole list.
        sizes: list[tuple[str, int]] = []
        for name, value in self.expand_input.items():
            if isinstance(value, XComArg):
                sizes.append((name, lookup.length(value.operator.task_id)))
            else:
                sizes.append((name, len(as_sequence(self.task_id, value))))
        chosen: dict[str, Any] = {}
        rest_index = map_index
        # Row-major: the last expand() argument varies fastest (as in Airflow).
        for name, size in reversed(sizes):
            if not size:
                raise IndexError(f"{self.task_id!r}: expand({name}=...) is empty")
            rest_index, i = divmod(rest_index, size)
            value = self.expand_input[name]
            if isinstance(value, XComArg):
                chosen[name] = lookup.item(value.operator.task_id, i)
            else:
                chosen[name] = as_sequence(self.task_id, value)[i]
        if rest_index:
            raise IndexError(f"map index {map_index} is out of range for {self.task_id!r}")
        kwargs = resolve_xcom_args(self.partial_kwargs, lookup)
        kwargs.update(chosen)
        # The upstream XComs travel along when the code may pull them (ti.xcom_pull).
        if getattr(self.factory, "may_pull", True):
            xcoms = capture_xcoms(self, lookup)
            if xcoms is not None:
                return _WithXComs(kwargs, xcoms)
        return kwargs


@dataclass(frozen=True, slots=True)
class _WithXComs:
    """What ``bind`` returns for a mapped instance that may pull XComs."""

    kwargs: dict[str, Any]
    xcoms: XComSnapshot
