"""``>>``, ``<<``, ``set_upstream`` and ``set_downstream``, once for tasks, task groups
and labels: each side is resolved to plain task edges by ``edges.link``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from airloop.authoring.edges import Label
    from airloop.authoring.operator import AbstractOperator


class DependencyMixin:
    def edge_roots(self) -> list[AbstractOperator]:
        """The tasks an edge ending at this object goes to."""
        raise NotImplementedError

    def edge_leaves(self) -> list[AbstractOperator]:
        """The tasks an edge starting from this object comes from."""
        raise NotImplementedError

    def set_downstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        # Imported here: edges imports the operator module, which builds on this one.
        from airloop.authoring.edges import link

        link(self, other, edge_modifier)

    def set_upstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        from airloop.authoring.edges import link

        link(other, self, edge_modifier)

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Self:
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Self:
        self.set_downstream(other)
        return self
