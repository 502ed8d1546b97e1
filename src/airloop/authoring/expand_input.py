"""What a mapped task expands over: literals, task outputs, ``.zip()`` and ``.map()``.

An expand() argument (or the one expand_kwargs() source) is an *expression*:

- a literal list, tuple or dict (a dict maps as its ``(key, value)`` items);
- an ``XComArg``: a task's output (a mapped task's: its successful instances' outputs);
- ``ZipXComArg``: ``a.zip(b, c, fillvalue=...)``, element ``i`` is ``(a[i], b[i], c[i])``;
- ``MapXComArg``: ``a.map(fn)``, element ``i`` is ``fn(a[i])``.

Binding one map index takes the *raw* element (only that element is fetched and
copied). A ``.map()`` function is user code that may block, so it is not applied
there, on the scheduler's loop: the instance is rebuilt as a ``PendingOperator`` and
the runner finishes it off the loop (``finish``), in whichever worker runs the try.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airloop.authoring.operator import BaseOperator
from airloop.authoring.xcom_arg import OutputLookup, XComArg, as_sequence, iter_xcom_args
from airloop.core.specs import MapSource
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.context import Context
    from airloop.authoring.operator import AbstractOperator


class _NoFill:
    def __repr__(self) -> str:
        return "NOFILL"

    def __reduce__(self) -> str:
        # One marker in every process: a Slot without a default crosses to a worker.
        return "NOFILL"


#: ``zip()`` without a fillvalue: as long as the shortest input.
NOFILL: Any = _NoFill()


def _check_fn(where: str, fn: Any) -> Callable[[Any], Any]:
    if isinstance(fn, XComArg) or (hasattr(fn, "partial") and hasattr(fn, "function")):
        raise DagDefinitionError(f"{where}: .map() needs a plain function, not a task")
    if not callable(fn):
        raise DagDefinitionError(f"{where}: .map() needs a function, got {type(fn).__name__}")
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    ):
        raise DagDefinitionError(f"{where}: .map() needs a plain function, not an async one")
    return fn  # type: ignore[no-any-return]


class MapXComArg(XComArg):
    """``source.map(fn)``: each element of ``source`` passed through ``fn`` when used."""

    __slots__ = ("fn", "source")

    def __init__(self, source: XComArg, fn: Callable[[Any], Any]) -> None:
        super().__init__(source.operator)
        self.source = source
        self.fn = _check_fn(f"{source!r}.map()", fn)

    def __repr__(self) -> str:
        return f"{self.source!r}.map({getattr(self.fn, '__name__', self.fn)!r})"


class ZipXComArg(XComArg):
    """``first.zip(*others)``: element ``i`` is the tuple of every input's element ``i``."""

    __slots__ = ("args", "fillvalue")

    def __init__(self, args: tuple[XComArg, ...], fillvalue: Any = NOFILL) -> None:
        for arg in args:
            if not isinstance(arg, XComArg):
                raise DagDefinitionError(
                    f"{args[0]!r}.zip() takes task outputs (XComArgs), got {type(arg).__name__}"
                )
            if isinstance(arg, ZipXComArg):
                raise DagDefinitionError(f"{args[0]!r}.zip(): cannot zip the result of .zip()")
        super().__init__(args[0].operator)
        self.args = args
        self.fillvalue = fillvalue

    @property
    def longest(self) -> bool:
        return self.fillvalue is not NOFILL

    def __repr__(self) -> str:
        return f"{self.args[0]!r}.zip({', '.join(repr(a) for a in self.args[1:])})"


def make_zip(first: XComArg, others: tuple[Any, ...], fillvalue: Any) -> ZipXComArg:
    if isinstance(first, ZipXComArg):
        raise DagDefinitionError(f"{first!r}.zip(): cannot zip the result of .zip()")
    if not others:
        raise DagDefinitionError(f"{first!r}.zip() needs at least one other task output")
    return ZipXComArg((first, *others), fillvalue)


# -- reading an expression at definition time --------------------------------------


def is_lazy(value: Any) -> bool:
    """Does binding ``value`` leave user code (a ``.map()`` function) to run?"""
    if isinstance(value, MapXComArg):
        return True
    if isinstance(value, ZipXComArg):
        return any(is_lazy(a) for a in value.args)
    return False


def plain_outputs(value: Any) -> Iterator[XComArg]:
    """The plain task outputs an expression reads (the tasks it depends on)."""
    if isinstance(value, MapXComArg):
        yield from plain_outputs(value.source)
    elif isinstance(value, ZipXComArg):
        for arg in value.args:
            yield from plain_outputs(arg)
    elif isinstance(value, XComArg):
        yield value
    else:
        yield from iter_xcom_args(value)


def dependencies(value: Any) -> list[AbstractOperator]:
    return [arg.operator for arg in plain_outputs(value)]


def map_source(name: str, value: Any) -> MapSource:
    """What the planner needs to know to count the elements of ``value``."""
    if isinstance(value, MapXComArg):
        return map_source(name, value.source)
    if isinstance(value, ZipXComArg):
        ids = [_upstream_id(a) for a in value.args]
        return MapSource(name, upstream=ids[0], zip_with=tuple(ids[1:]), zip_longest=value.longest)
    if isinstance(value, XComArg):
        return MapSource(name, upstream=value.operator.task_id)
    return MapSource(name, literal_length=len(value))


def _upstream_id(arg: XComArg) -> str:
    return _upstream_id(arg.source) if isinstance(arg, MapXComArg) else arg.operator.task_id


def reject_in_plain_arguments(where: str, value: Any) -> None:
    """``.map()``/``.zip()`` results only mean something to expand() and expand_kwargs();
    a mapped task group's argument only to the tasks made inside that group.

    One plain recursive walk (every task's arguments pass here when a DAG is built)."""
    if isinstance(value, MappedArgument):
        raise DagDefinitionError(
            f"{where}: {value!r} stands for the argument of mapped task group "
            f"{value.group_id!r}; only tasks made inside that group can use it"
        )
    if isinstance(value, (MapXComArg, ZipXComArg)):
        raise DagDefinitionError(
            f"{where}: {value!r} can only be given to .expand() or .expand_kwargs()"
        )
    if isinstance(value, XComArg):
        return  # a plain XComArg, or a subscript of one: searched no deeper, as before
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            reject_in_plain_arguments(where, item)
    elif isinstance(value, dict):
        for item in value.values():
            reject_in_plain_arguments(where, item)


# -- a mapped task group's arguments ---------------------------------------------------


class MappedArgument:
    """A parameter of a mapped task group's function (ADR 0029): instance ``i`` of each
    task made in the group gets element ``i`` of the group's expansion in its place.

    Subscripted (``arg["key"]``, ``arg[0]``) it is that item of the element.
    """

    __slots__ = ("default", "group_id", "name", "owner", "path")

    def __init__(
        self,
        owner: object,
        group_id: str,
        name: str,
        path: tuple[Any, ...] = (),
        default: Any = NOFILL,
    ) -> None:
        #: The MappedTaskGroup it belongs to (compared by identity).
        self.owner = owner
        self.group_id = group_id
        self.name = name
        self.path = path
        #: The parameter's default: used when an expand_kwargs() dict lacks the name.
        self.default = default

    def __getitem__(self, item: str | int) -> MappedArgument:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise TypeError(
                f"{self!r} can be subscripted with a str or an int, not {type(item).__name__}"
            )
        return MappedArgument(self.owner, self.group_id, self.name, (*self.path, item))

    def __repr__(self) -> str:
        subscripts = "".join(f"[{p!r}]" for p in self.path)
        return f"MappedArgument({self.group_id!r}, {self.name!r}){subscripts}"

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            f"{self!r} is not known while the DAG is defined (each map index gets its own "
            "element); pass it to a task inside the group"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self!r} has no truth value while the DAG is defined; branch inside a task instead"
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """A ``MappedArgument`` as a task made in the group keeps it (plain, picklable)."""

    name: str
    path: tuple[Any, ...] = ()
    default: Any = NOFILL


def iter_mapped_arguments(value: Any) -> Iterator[MappedArgument]:
    if isinstance(value, MappedArgument):
        yield value
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from iter_mapped_arguments(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_mapped_arguments(item)


def to_slots(where: str, value: Any, owner: object) -> Any:
    """``value`` with each MappedArgument of ``owner`` (a group) made a ``Slot``."""
    if isinstance(value, MappedArgument):
        if value.owner is not owner:
            raise DagDefinitionError(
                f"{where}: {value!r} belongs to another mapped task group; only tasks made "
                f"inside {value.group_id!r} can use it"
            )
        return Slot(value.name, value.path, value.default)
    if isinstance(value, list):
        return [to_slots(where, v, owner) for v in value]
    if isinstance(value, tuple):
        return tuple(to_slots(where, v, owner) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(to_slots(where, v, owner) for v in value)
    if isinstance(value, dict):
        return {k: to_slots(where, v, owner) for k, v in value.items()}
    return value


def has_slots(value: Any) -> bool:
    if isinstance(value, Slot):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(has_slots(v) for v in value)
    if isinstance(value, dict):
        return any(has_slots(v) for v in value.values())
    return False


def fill_slots(where: str, value: Any, element: Mapping[str, Any]) -> Any:
    """``value`` with each ``Slot`` replaced by its item of ``element`` (the group's
    arguments for one map index, by parameter name). Errors are ``LookupError``s."""
    if isinstance(value, Slot):
        if value.name in element:
            found = element[value.name]
        elif value.default is not NOFILL:
            found = value.default
        else:
            raise LookupError(f"{where}: the group's argument {value.name!r} is missing")
        done = value.name
        for step in value.path:
            try:
                found = found[step]
            except (KeyError, IndexError, TypeError):
                raise LookupError(
                    f"{where}: the group's argument {done} has no item [{step!r}] "
                    f"(it is a {type(found).__name__})"
                ) from None
            done += f"[{step!r}]"
        return found
    if isinstance(value, list):
        return [fill_slots(where, v, element) for v in value]
    if isinstance(value, tuple):
        return tuple(fill_slots(where, v, element) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(fill_slots(where, v, element) for v in value)
    if isinstance(value, dict):
        return {k: fill_slots(where, v, element) for k, v in value.items()}
    return value


# -- binding one map index -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Missing:
    """A zip input shorter than the longest one: ``fillvalue`` takes its place."""


def length(task_id: str, value: Any, lookup: OutputLookup) -> int:
    if isinstance(value, MapXComArg):
        return length(task_id, value.source, lookup)
    if isinstance(value, ZipXComArg):
        lengths = [length(task_id, a, lookup) for a in value.args]
        return max(lengths) if value.longest else min(lengths)
    if isinstance(value, XComArg):
        return lookup.length(value.operator.task_id)
    return len(as_sequence(task_id, value))


def raw_item(task_id: str, value: Any, index: int, lookup: OutputLookup) -> Any:
    """Element ``index`` of ``value`` before any ``.map()`` function is applied."""
    if isinstance(value, MapXComArg):
        return raw_item(task_id, value.source, index, lookup)
    if isinstance(value, ZipXComArg):
        return tuple(
            raw_item(task_id, a, index, lookup) if index < length(task_id, a, lookup) else Missing()
            for a in value.args
        )
    if isinstance(value, XComArg):
        return lookup.item(value.operator.task_id, index)
    return as_sequence(task_id, value)[index]


def finish(value: Any, raw: Any) -> Any:
    """The element itself: ``.map()`` functions applied, zip gaps filled (user code runs)."""
    if isinstance(value, MapXComArg):
        return value.fn(finish(value.source, raw))
    if isinstance(value, ZipXComArg):
        return tuple(
            value.fillvalue if isinstance(r, Missing) else finish(a, r)
            for a, r in zip(value.args, raw, strict=True)
        )
    return raw


# -- a mapped instance whose arguments are finished by the runner --------------------


@dataclass(frozen=True, slots=True)
class PendingBound:
    """What ``bind`` returns when a ``.map()`` function is still to run: raw elements."""

    map_index: int
    raw: dict[str, Any]
    #: The partial() arguments, task outputs among them resolved.
    partial: dict[str, Any]


class PendingOperator(BaseOperator):
    """Stands for one mapped instance until ``finish`` (off the loop) builds the real one."""

    def __init__(self, *, node: Any, bound: PendingBound, is_async: bool) -> None:
        from airloop.authoring.dag import detached

        with detached():
            super().__init__(task_id=node.task_id)
        self.node = node
        self.bound = bound
        self._is_async = is_async

    @property
    def is_async(self) -> bool:
        return self._is_async

    def finish(self) -> BaseOperator:
        """Run the ``.map()`` functions and build the operator (blocking: off the loop)."""
        op: BaseOperator = self.node.finish_pending(self.bound)
        return op

    def execute(self, context: Context) -> Any:
        raise RuntimeError(f"{self.task_id!r}: its .map() arguments were never applied")
