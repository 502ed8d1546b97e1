"""XComArg: a reference to a task's future return value, usable as an argument."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from airloop.authoring.xcom import (
    NO_XCOMS,
    XCOM_RETURN_KEY,
    TaskXComs,
    resolve_subscript,
)

if TYPE_CHECKING:
    from airloop.authoring.operator import AbstractOperator


_NOFILL: Any = object()


class XComArg:
    """The return value of ``operator``, resolved when a downstream task runs.

    Calling a ``@task`` returns one; ``op.output`` gives one for a classic operator.
    Using it as an argument makes the consumer depend on ``operator``. Subscripted
    (``order["total"]``) it is the XCom of that key (multiple_outputs, ``xcom_push``),
    or else that item of the return value; ``path`` holds the subscripts.
    """

    __slots__ = ("operator", "path")

    def __init__(self, operator: AbstractOperator, path: tuple[Any, ...] = ()) -> None:
        self.operator = operator
        self.path = path

    @property
    def key(self) -> str:
        """The XCom key this argument reads first (Airflow's ``XComArg.key``)."""
        head = self.path[0] if self.path else XCOM_RETURN_KEY
        return head if isinstance(head, str) else XCOM_RETURN_KEY

    def __getitem__(self, item: str | int) -> XComArg:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise TypeError(
                f"the output of task {self.operator.task_id!r} can be subscripted with a str "
                f"or an int, not {type(item).__name__}"
            )
        return XComArg(self.operator, (*self.path, item))

    # Dependencies written with XComArgs read like the ones written with operators.
    def __rshift__(self, other: Any) -> Any:
        return self.operator >> other

    def __lshift__(self, other: Any) -> Any:
        return self.operator << other

    def __rrshift__(self, other: Any) -> XComArg:
        self.operator.__rrshift__(other)
        return self

    def __rlshift__(self, other: Any) -> XComArg:
        self.operator.__rlshift__(other)
        return self

    def set_downstream(self, other: Any, edge_modifier: Any = None) -> None:
        self.operator.set_downstream(other, edge_modifier)

    def set_upstream(self, other: Any, edge_modifier: Any = None) -> None:
        self.operator.set_upstream(other, edge_modifier)

    # Setup and teardown roles (see setup_teardown.py), as on the operator.
    def as_setup(self) -> XComArg:
        self.operator.as_setup()
        return self

    def as_teardown(
        self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None
    ) -> XComArg:
        self.operator.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __repr__(self) -> str:
        subscripts = "".join(f"[{p!r}]" for p in self.path)
        return f"XComArg({self.operator.task_id!r}){subscripts}"

    # Mapping helpers (see expand_input.py): usable as expand()/expand_kwargs() sources.
    def zip(self, *others: XComArg, fillvalue: Any = _NOFILL) -> XComArg:
        """Element ``i`` is ``(self[i], others[0][i], ...)``: as long as the shortest
        input, or the longest one when ``fillvalue`` is given (gaps get it)."""
        from airloop.authoring.expand_input import NOFILL, make_zip

        return make_zip(self, others, NOFILL if fillvalue is _NOFILL else fillvalue)

    def map(self, fn: Callable[[Any], Any]) -> XComArg:
        """Element ``i`` is ``fn(self[i])``, computed by the mapped instance that uses it."""
        from airloop.authoring.expand_input import MapXComArg

        return MapXComArg(self, fn)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            f"the output of task {self.operator.task_id!r} is not known while the DAG is "
            "defined; to run a task once per element, use .expand(arg=...)"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            f"the output of task {self.operator.task_id!r} has no truth value while the DAG "
            "is defined; branch inside a task instead"
        )


def iter_xcom_args(value: Any) -> Iterator[XComArg]:
    """Every XComArg inside ``value`` (lists, tuples, sets and dict values are searched)."""
    if isinstance(value, XComArg):
        yield value
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from iter_xcom_args(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_xcom_args(item)


def resolve_xcom_args(
    value: Any, lookup: OutputLookup, wrap: Callable[[Any], Any] | None = None
) -> Any:
    """``value`` with each XComArg replaced by its value (passed through ``wrap``)."""
    if isinstance(value, XComArg):
        task_id = value.operator.task_id
        if value.path:
            found = resolve_subscript(task_id, lookup.xcoms(task_id), value.path)
        else:
            found = lookup(task_id)
        return found if wrap is None else wrap(found)
    if isinstance(value, list):
        return [resolve_xcom_args(v, lookup, wrap) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_xcom_args(v, lookup, wrap) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(resolve_xcom_args(v, lookup, wrap) for v in value)
    if isinstance(value, dict):
        return {k: resolve_xcom_args(v, lookup, wrap) for k, v in value.items()}
    return value


class OutputLookup(Protocol):
    """Upstream outputs for a task instance that is about to run.

    Each call returns the consumer's own copy: a task that mutates its input never
    changes what another task (or its own next try) receives.
    """

    def __call__(self, task_id: str) -> Any:
        """The whole output (for a mapped task: the list of its instances' outputs)."""

    def length(self, task_id: str) -> int:
        """How many elements an expand() over this output has."""

    def item(self, task_id: str, index: int) -> Any:
        """Element ``index`` of the output (a ``(key, value)`` pair for a dict)."""

    def xcoms(self, task_id: str) -> TaskXComs:
        """Every XCom the task stored (JSON texts), for ``ti.xcom_pull`` and subscripts."""

    def instance_xcoms(self, task_id: str, map_index: int) -> TaskXComs:
        """The XComs of one instance of a mapped task, read as an unmapped task's (map
        index -1) and under ``map_index``: what a task of a mapped task group sees of
        its group's tasks (their same-index outputs)."""


def as_sequence(task_id: str, value: Any) -> list[Any] | tuple[Any, ...]:
    """What expand() iterates over: a list or tuple as is, a dict as its items."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return value
    raise TypeError(
        f"cannot map over the output of {task_id!r}: got {type(value).__name__}, "
        "not a list, tuple or dict"
    )


class ValuesLookup:
    """An OutputLookup over values given directly (``airloop tasks test --upstream``)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __call__(self, task_id: str) -> Any:
        return copy.deepcopy(self._values[task_id])

    def length(self, task_id: str) -> int:
        return len(as_sequence(task_id, self._values[task_id]))

    def item(self, task_id: str, index: int) -> Any:
        return copy.deepcopy(as_sequence(task_id, self._values[task_id])[index])

    def xcoms(self, task_id: str) -> TaskXComs:
        value = self._values[task_id]
        if value is None:
            return NO_XCOMS
        return TaskXComs(False, {-1: {XCOM_RETURN_KEY: json.dumps(value)}})

    def instance_xcoms(self, task_id: str, map_index: int) -> TaskXComs:
        """The value given is the instance's own (a task of a mapped task group)."""
        value = self._values[task_id]
        if value is None:
            return NO_XCOMS
        keys = {XCOM_RETURN_KEY: json.dumps(value)}
        return TaskXComs(False, {-1: keys, map_index: keys})
