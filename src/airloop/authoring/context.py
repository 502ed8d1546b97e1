"""The context a running task receives: ``context["params"]``, ``context.ti``, ..."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airloop.authoring.xcom import XCOM_RETURN_KEY, Pushed, XComPullError, XComSnapshot, pull
from airloop.exceptions import AirloopError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airloop.authoring.dag import DAG
    from airloop.authoring.operator import BaseOperator


@dataclass(frozen=True, slots=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    #: None: a run created without one (as Airflow 3): the keys needing it are absent.
    logical_date: datetime | None
    run_type: str
    params: Mapping[str, Any]
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    #: The DAG's latest successful run before this one (by logical date): its data
    #: interval and start date (None when there is none), looked up at run start.
    prev_data_interval_start_success: datetime | None = None
    prev_data_interval_end_success: datetime | None = None
    prev_start_date_success: datetime | None = None
    #: A run of ``dag.test()`` / ``airloop dags test`` (the context's ``test_mode``).
    test_mode: bool = False

    @property
    def conf(self) -> Mapping[str, Any]:
        """Airflow's ``dag_run.conf``: here the run's params (what the trigger gave,
        over the DAG's defaults), as airloop validates a trigger's conf as params."""
        return self.params


@dataclass(frozen=True, slots=True)
class TaskInstanceInfo:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    max_tries: int
    log_path: str | None
    #: The XComs of the task's upstream tasks, for ``xcom_pull`` (None: not captured).
    xcoms: XComSnapshot | None = None
    #: What this try pushes (None: pushing is not possible here, e.g. a bare context).
    pushed: Pushed | None = None

    def xcom_push(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON, size-checked now) as this task instance's XCom ``key``.

        It is stored when the try succeeds; downstream tasks pull it with
        ``ti.xcom_pull(task_ids=..., key=...)``.
        """
        if self.pushed is None:
            raise XComPullError(
                f"ti.xcom_push in task {self.task_id!r}: pushing is only possible in a task "
                "instance run by airloop"
            )
        self.pushed.push(key, value)

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str | None = XCOM_RETURN_KEY,
        include_prior_dates: bool = False,
        map_indexes: int | Iterable[int] | None = None,
        default: Any = None,
    ) -> Any:
        """The XCom ``key`` (the return value by default) of upstream task(s).

        A str ``task_ids`` gives a value, a list gives a list; ``map_indexes`` likewise,
        and a mapped task without ``map_indexes`` gives the list of its instances'
        values. Only the XComs of this task's upstream tasks (direct or transitive) are
        at hand: they travel with the task to any executor (ADR 0025).
        """
        if dag_id not in (None, self.dag_id) or include_prior_dates:
            raise XComPullError(
                f"ti.xcom_pull in task {self.task_id!r}: only XComs of the same DAG run "
                "can be pulled"
            )
        return pull(
            task_id=self.task_id,
            map_index=self.map_index,
            snapshot=self.xcoms,
            pushed=self.pushed,
            task_ids=task_ids,
            key=key,
            map_indexes=map_indexes,
            default=default,
        )

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


#: The context keys that need the run's logical date (absent from a run without one,
#: as in Airflow 3).
_DATED_KEYS: frozenset[str] = frozenset(
    {
        "logical_date",
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "task_instance_key_str",
    }
)

#: The names a ``@task`` function may take as parameters to receive context values.
CONTEXT_KEYS: frozenset[str] = _DATED_KEYS | frozenset(
    {
        "dag",
        "task",
        "ti",
        "task_instance",
        "params",
        "run_id",
        "dag_run",
        "log",
        "map_index",
        "try_number",
        "checkpoint",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
        "prev_start_date_success",
        "macros",
        "test_mode",
        "expanded_ti_count",
        "var",
        "conn",
    }
)


class _NotInstalled:
    """``var`` / ``conn`` before an executor installed the real accessors (a context
    built by hand, outside any airloop executor): present, and a clear error when used."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def _fail(self) -> Any:
        raise AirloopError(
            f"{self._what} are only available in task code run by airloop "
            "(no executor installed the lookups in this process)"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._fail()

    def __getitem__(self, key: str) -> Any:
        return self._fail()

    def __repr__(self) -> str:
        return f"<{self._what}: not available yet>"


_VARIABLES: Any = _NotInstalled("Variables")
_CONNECTIONS: Any = _NotInstalled("Connections")


def install_lookups(variables: Any, connections: Any) -> None:
    """Make ``context["var"]`` / ``context["conn"]`` (and ``{{ var }}``, ``{{ conn }}``)
    these accessors. Called by the executors' runner: the lookups live in a higher
    layer (airloop.connections) than authoring."""
    global _VARIABLES, _CONNECTIONS
    _VARIABLES, _CONNECTIONS = variables, connections


@dataclass(frozen=True, slots=True)
class Context(Mapping[str, Any]):
    """Read as attributes (``context.params``) or as in Airflow (``context["params"]``)."""

    dag: DAG
    task: BaseOperator
    ti: TaskInstanceInfo
    dag_run: DagRunInfo
    log: logging.Logger
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    #: The number of instances of a mapped task (None for an unmapped one).
    expanded_ti_count: int | None = None
    #: The params this task sees when it has its own (merged over the DAG's).
    task_params: Mapping[str, Any] | None = None

    @property
    def task_instance(self) -> TaskInstanceInfo:
        return self.ti

    @property
    def params(self) -> Mapping[str, Any]:
        return self.dag_run.params if self.task_params is None else self.task_params

    @property
    def run_id(self) -> str:
        return self.dag_run.run_id

    @property
    def logical_date(self) -> datetime:
        value = self.dag_run.logical_date
        if value is None:
            raise KeyError("this run has no logical date")
        return value

    @property
    def data_interval_start(self) -> datetime | None:
        return self.dag_run.data_interval_start

    @property
    def data_interval_end(self) -> datetime | None:
        return self.dag_run.data_interval_end

    @property
    def prev_data_interval_start_success(self) -> datetime | None:
        return self.dag_run.prev_data_interval_start_success

    @property
    def prev_data_interval_end_success(self) -> datetime | None:
        return self.dag_run.prev_data_interval_end_success

    @property
    def prev_start_date_success(self) -> datetime | None:
        return self.dag_run.prev_start_date_success

    @property
    def ds(self) -> str:
        return self.logical_date.strftime("%Y-%m-%d")

    @property
    def ds_nodash(self) -> str:
        return self.logical_date.strftime("%Y%m%d")

    @property
    def ts(self) -> str:
        return self.logical_date.isoformat()

    @property
    def ts_nodash(self) -> str:
        return self.logical_date.strftime("%Y%m%dT%H%M%S")

    @property
    def ts_nodash_with_tz(self) -> str:
        return self.ts.replace("-", "").replace(":", "")

    @property
    def task_instance_key_str(self) -> str:
        return f"{self.ti.dag_id}__{self.ti.task_id}__{self.ds_nodash}"

    @property
    def map_index(self) -> int:
        return self.ti.map_index

    @property
    def try_number(self) -> int:
        return self.ti.try_number

    @property
    def macros(self) -> Any:
        # Imported on first use: dateutil is slow to import and most tasks never ask.
        from airloop.authoring import macros

        return macros

    @property
    def test_mode(self) -> bool:
        return self.dag_run.test_mode

    @property
    def var(self) -> Any:
        return _VARIABLES

    @property
    def conn(self) -> Any:
        return _CONNECTIONS

    def _keys(self) -> frozenset[str]:
        keys = CONTEXT_KEYS
        if self.dag_run.logical_date is None:
            keys = keys - _DATED_KEYS
        if self.expanded_ti_count is None and self.ti.map_index >= 0:
            # A mapped instance's count is not passed to it yet: absent, not wrong.
            keys = keys - {"expanded_ti_count"}
        return keys

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys()))

    def __len__(self) -> int:
        return len(self._keys())


_current_context: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "airloop_current_context", default=None
)


def set_current_context(context: Context) -> None:
    """Called by the runner for each task instance (its own contextvars context)."""
    _current_context.set(context)


def get_current_context() -> Context:
    """The context of the task instance whose code is running (as Airflow's)."""
    context = _current_context.get()
    if context is None:
        raise RuntimeError(
            "get_current_context() was called outside a running task: it is available "
            "only in task code (execute, a @task function, a template) run by airloop"
        )
    return context
