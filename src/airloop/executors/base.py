"""The executor API every backend implements; the scheduler sees nothing else.

The scheduler decides from the class's declared properties, never from isinstance
checks on concrete classes. Executors only report (through the OutcomeChannel);
the scheduler is the only writer of state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.core.planner import TIKey
from airloop.engine.events import OutcomeChannel


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One try of one task instance, ready to run: operator materialized, context built."""

    run_pk: int
    key: TIKey
    try_number: int
    operator: BaseOperator
    context: Context
    timeout: float | None
    log_path: str
    xcom_max_bytes: int

    @property
    def ref(self) -> tuple[int, TIKey]:
        return (self.run_pk, self.key)

    @property
    def label(self) -> str:
        return str(self.context.ti)


class Executor(ABC):
    """Runs work items and reports TaskStarted / TaskFinished through the channel."""

    name: ClassVar[str]
    #: Work runs on the scheduler's event loop (so blocking there blocks everything).
    runs_on_scheduler_loop: ClassVar[bool]
    #: ``async def`` tasks are awaited as coroutines, not wrapped in a private loop.
    runs_coroutines_natively: ClassVar[bool]
    #: Work keeps running if the scheduler process dies.
    survives_scheduler_restart: ClassVar[bool] = False
    #: Work that did not stop by the shutdown deadline and was left behind.
    abandoned: int = 0

    @property
    @abstractmethod
    def capacity(self) -> int | None:
        """How many task instances can run at once (None: bounded only by memory)."""

    @property
    @abstractmethod
    def running(self) -> int:
        """How many task instances are submitted and not yet reported finished."""

    @abstractmethod
    async def start(self, channel: OutcomeChannel) -> None:
        """Get ready to accept work; call from the task that will later call shutdown."""

    @abstractmethod
    def submit(self, item: WorkItem) -> None:
        """Start ``item``; never blocks the loop."""

    @abstractmethod
    def cancel(self, ref: tuple[int, TIKey], reason: str) -> bool:
        """Ask one running task instance to stop; it reports a failure saying ``reason``."""

    @abstractmethod
    def cancel_all(self, reason: str) -> int:
        """Ask every running task instance to stop. Returns how many were asked."""

    @abstractmethod
    async def shutdown(self, deadline: float) -> None:
        """Stop: cancel what still runs, wait until ``deadline`` (loop time) at most."""
