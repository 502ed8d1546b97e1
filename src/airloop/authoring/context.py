"""The context a running task receives: ``context["params"]``, ``context.ti``, ..."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
