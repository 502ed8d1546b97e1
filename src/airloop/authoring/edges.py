"""Dependencies between tasks and groups: ``>>``, ``chain``, ``cross_downstream``, ``Label``.

Everything that can sit on either side of ``>>`` is resolved here to plain task edges,
as Airflow does: a task is itself, an ``XComArg`` is its task, a list is each of its
items, a task group is its roots (as a downstream) or its leaves (as an upstream).
A ``Label`` sits between the two sides and names the edges made through it; labels
are stored on the DAG (``dag.edge_info``) for a UI to draw.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airloop.authoring.dependency import DependencyMixin
from airloop.authoring.operator import AbstractOperator
from airloop.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from airloop.authoring.dag import DAG


class Label(DependencyMixin):
    """A name on the edges it sits on: ``a >> Label("valid") >> b``.

    As in Airflow, a label remembers what was put on each side of it, so it works in
    either direction (``b << Label("x") << a``) and with lists and groups.
    """

    def __init__(self, label: str) -> None:
        if not isinstance(label, str) or not label:
            raise DagDefinitionError(f"Label needs a non-empty string, got {label!r}")
        self.label = label
        self._upstream: list[Any] = []
        self._downstream: list[Any] = []

    def set_downstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        _no_second_label(self, edge_modifier)
        self._downstream.append(other)
        for up in self._upstream:
            link(up, other, self)

    def set_upstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        _no_second_label(self, edge_modifier)
        self._upstream.append(other)
        for down in self._downstream:
            link(other, down, self)

    def __repr__(self) -> str:
        return f"Label({self.label!r})"


def _no_second_label(label: Label, edge_modifier: Label | None) -> None:
    if edge_modifier is not None:
        raise DagDefinitionError(f"an edge cannot have two labels ({label!r}, {edge_modifier!r})")


def _tasks(value: Any, side: str) -> list[AbstractOperator]:
    """The tasks ``value`` stands for at one end of an edge (``side``: "roots" or "leaves")."""
    from airloop.authoring.xcom_arg import XComArg

    if isinstance(value, AbstractOperator):
        return [value]
    if isinstance(value, XComArg):
        return [value.operator]
    if isinstance(value, Label):
        raise DagDefinitionError(f"{value!r} cannot be inside a list: put it between two sides")
    if isinstance(value, DependencyMixin):
        return value.edge_roots() if side == "roots" else value.edge_leaves()
    if isinstance(value, (list, tuple, set)):
        out: list[AbstractOperator] = []
        for item in value:
            out.extend(_tasks(item, side))
        return out
    raise DagDefinitionError(f"cannot set a dependency on {value!r}: not a task")


def link(upstream: Any, downstream: Any, label: Label | None = None) -> None:
    """Make every task ``upstream`` stands for an upstream of every one ``downstream`` does."""
    if isinstance(upstream, Label):
        upstream.set_downstream(downstream, label)
        return
    if isinstance(downstream, Label):
        downstream.set_upstream(upstream, label)
        return
    ups = _tasks(upstream, "leaves")
    downs = _tasks(downstream, "roots")
    for up in ups:
        for down in downs:
            up._same_dag(down)
            up.downstream_task_ids.add(down.task_id)
            down.upstream_task_ids.add(up.task_id)
            if label is not None:
                dag: DAG = up.dag  # type: ignore[assignment]  # _same_dag checked it is set
                dag.set_edge_info(up.task_id, down.task_id, {"label": label.label})


# -- helpers with Airflow's names ------------------------------------------------------


def _is_node(value: Any) -> bool:
    """One thing that can sit on a side of ``>>`` (not a list of them)."""
    from airloop.authoring.xcom_arg import XComArg

    return isinstance(value, (AbstractOperator, XComArg, DependencyMixin))


def _as_list(where: str, value: Any) -> Sequence[Any]:
    if isinstance(value, (list, tuple)):
        return value
    raise DagDefinitionError(f"{where}: cannot set a dependency on {value!r}: not a task")


@contextlib.contextmanager
def _named(where: str) -> Iterator[None]:
    """Prefix errors raised while wiring with the helper's name."""
    try:
        yield
    except DagDefinitionError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None


def chain(*elements: Any) -> None:
    """Link each element to the next, as Airflow's ``chain``.

    A task (or group, or label) links to all of a list's items; two adjacent lists
    must have the same length and are linked pairwise: ``chain(a, [b, c], [d, e], f)``
    gives ``a>>b>>d>>f`` and ``a>>c>>e>>f``.
    """
    with _named("chain()"):
        for up, down in itertools.pairwise(elements):
            if _is_node(up) or _is_node(down):
                link(up, down)
            else:
                ups, downs = _as_list("chain()", up), _as_list("chain()", down)
                if len(ups) != len(downs):
                    raise DagDefinitionError(
                        f"chain(): lists of different lengths ({len(ups)} and {len(downs)}) "
                        "cannot be linked pairwise; use chain_linear() to link every item "
                        "of one to every item of the next"
                    )
                for u, d in zip(ups, downs, strict=True):
                    link(u, d)


def chain_linear(*elements: Any) -> None:
    """Link every item of each element to every item of the next (Airflow's ``chain_linear``)."""
    with _named("chain_linear()"):
        if len(elements) < 2:
            raise DagDefinitionError(
                f"chain_linear() needs at least 2 elements, got {len(elements)} "
                "(did you forget to unpack a list with *?)"
            )
        for element in elements:
            if isinstance(element, Label):
                raise DagDefinitionError(
                    "chain_linear(): labels are not supported (use a >> Label(...) >> b)"
                )
        for up, down in itertools.pairwise(elements):
            link(up, down)


def cross_downstream(from_tasks: Iterable[Any], to_tasks: Any) -> None:
    """Every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    with _named("cross_downstream()"):
        if _is_node(from_tasks) or not isinstance(from_tasks, (list, tuple, set)):
            raise DagDefinitionError(
                f"cross_downstream(): from_tasks must be a list of tasks, got {from_tasks!r}"
            )
        for up in from_tasks:
            link(up, to_tasks)
