"""The context a running task receives: ``context["params"]``, ``context.ti``, ..."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airloop.authoring.dag import DAG
    from airloop.authoring.operator import BaseOperator


@dataclass(frozen=True, slots=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    logical_date: datetime
    run_type: str
    params: Mapping[str, Any]
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskInstanceInfo:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    log_path: str | None

    def __str__(self) -> str:
        idx = "" if self.map_index < 0 else f"[{self.map_index}]"
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{idx} try {self.try_number}"


class Checkpoint:
    """A task instance's durable note about external work it started.

    An operator that launches something outside airloop (a Batch job) saves its handle
    with ``await context.checkpoint.save({...})`` BEFORE it starts waiting; the write is
    durable when ``save`` returns. If airloop dies and the task instance is resumed,
    ``context.checkpoint.value`` holds it and the operator re-attaches instead of
    launching again. A checkpoint belongs to one try: a retry starts with none.
    """

    def __init__(
        self,
        value: Any = None,
        saver: Callable[[Any], Awaitable[None]] | None = None,
        *,
        resumed: bool = False,
    ) -> None:
        self._value = value
        self._saver = saver
        #: This try ran before (airloop was restarted while it ran): work it launched
        #: may exist even without a saved value (a crash between launch and save).
        self.resumed = resumed

    @property
    def value(self) -> Any:
        return self._value

    @property
    def durable(self) -> bool:
        return self._saver is not None

    async def save(self, value: Any) -> None:
        if self._saver is not None:
            await self._saver(value)
        self._value = value


#: The names a ``@task`` function may take as parameters to receive context values.
CONTEXT_KEYS: frozenset[str] = frozenset(
    {
        "dag",
        "task",
        "ti",
        "params",
        "run_id",
        "dag_run",
        "logical_date",
        "ds",
        "log",
        "map_index",
        "try_number",
        "checkpoint",
        "data_interval_start",
        "data_interval_end",
    }
)


@dataclass(frozen=True, slots=True)
class Context(Mapping[str, Any]):
    """Read as attributes (``context.params``) or as in Airflow (``context["params"]``)."""

    dag: DAG
    task: BaseOperator
    ti: TaskInstanceInfo
    dag_run: DagRunInfo
    log: logging.Logger
    checkpoint: Checkpoint = field(default_factory=Checkpoint)

    @property
    def params(self) -> Mapping[str, Any]:
        return self.dag_run.params

    @property
    def run_id(self) -> str:
        return self.dag_run.run_id

    @property
    def logical_date(self) -> datetime:
        return self.dag_run.logical_date

    @property
    def data_interval_start(self) -> datetime | None:
        return self.dag_run.data_interval_start

    @property
    def data_interval_end(self) -> datetime | None:
        return self.dag_run.data_interval_end

    @property
    def ds(self) -> str:
        return self.dag_run.logical_date.strftime("%Y-%m-%d")

    @property
    def map_index(self) -> int:
        return self.ti.map_index

    @property
    def try_number(self) -> int:
        return self.ti.try_number

    def __getitem__(self, key: str) -> Any:
        if key not in CONTEXT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(CONTEXT_KEYS))

    def __len__(self) -> int:
        return len(CONTEXT_KEYS)
