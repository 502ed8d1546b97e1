"""What the planner knows about a DAG's tasks: their keys and specs."""

from __future__ import annotations

from dataclasses import dataclass, field

from airloop.core.retry import RetryPolicy
from airloop.core.trigger_rules import TriggerRule

UNMAPPED = -1


@dataclass(frozen=True, slots=True)
class TIKey:
    """One task instance within a run: the task and its map index (-1 when unmapped)."""

    task_id: str
    map_index: int = UNMAPPED

    def __str__(self) -> str:
        return self.task_id if self.map_index == UNMAPPED else f"{self.task_id}[{self.map_index}]"


@dataclass(frozen=True, slots=True)
class MapSource:
    """One argument a mapped task expands over: a literal of known length or an upstream's output.

    ``zip_with`` names more upstream tasks zipped with ``upstream`` (``XComArg.zip``):
    the length is the shortest one's, or the longest one's when ``zip_longest``.
    """

    name: str
    literal_length: int | None = None
    upstream: str | None = None
    zip_with: tuple[str, ...] = ()
    zip_longest: bool = False

    @property
    def upstreams(self) -> tuple[str, ...]:
        """Every upstream task whose output this argument's length depends on."""
        return () if self.upstream is None else (self.upstream, *self.zip_with)

    def __post_init__(self) -> None:
        if (self.literal_length is None) == (self.upstream is None):
            raise ValueError("a MapSource has either a literal length or an upstream task")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the planner needs to know about a task; built from an operator by the engine."""

    task_id: str
    upstream: tuple[str, ...] = ()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool: str = "default_pool"
    pool_slots: int = 1
    priority_weight: int = 1
    map_sources: tuple[MapSource, ...] = ()
    #: The executor that runs it, for its capacity ("": not counted).
    executor: str = ""

    @property
    def is_mapped(self) -> bool:
        return bool(self.map_sources)
