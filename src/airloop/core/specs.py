"""What the planner knows about a DAG's tasks: their keys and specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from airloop.core.retry import RetryPolicy
from airloop.core.trigger_rules import TriggerRule

UNMAPPED = -1


class TIKey(NamedTuple):
    """One task instance within a run: the task and its map index (-1 when unmapped).

    A named tuple, not a dataclass: every transition hashes and compares keys many
    times (the planner's and the engine's dicts and sets), and a tuple does both in C
    where a frozen dataclass runs a Python ``__hash__``/``__eq__`` (ADR 0042). Like a
    tuple, it equals a plain ``(task_id, map_index)`` tuple; keys are never mixed with
    other tuples in one collection.
    """

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
    #: A setup task (``@setup``, ``as_setup()``): teardowns downstream need one to succeed.
    is_setup: bool = False
    #: A teardown task (``@teardown``, ``as_teardown()``): ignored for the run's state
    #: unless ``on_failure_fail_dagrun``; never skipped by ``fail_fast``.
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False
    #: Each instance waits for a ``PastGateMet`` before it is scheduled (Airflow's
    #: depends_on_past; the engine decides when the gate is met).
    depends_on_past: bool = False
    #: At most this many instances of the task queued or running over all the DAG's
    #: runs (Airflow's max_active_tis_per_dag; None: no limit).
    max_active_tis_per_dag: int | None = None
    #: At most this many instances queued or running within one run (mapped
    #: instances count; Airflow's max_active_tis_per_dagrun; None: no limit).
    max_active_tis_per_dagrun: int | None = None
    #: Upstream tasks matched map index by map index (a mapped task group's inner
    #: edges): instance ``i`` waits only for their instance ``i``. Each must be in
    #: ``upstream`` and map over the same ``map_sources``.
    per_index_upstream: tuple[str, ...] = ()

    @property
    def is_mapped(self) -> bool:
        return bool(self.map_sources)
