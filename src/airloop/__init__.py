"""airloop: a workflow orchestrator rebuilt around one asyncio event loop."""

from typing import TYPE_CHECKING, Any

from airloop.authoring.branch import (
    BaseBranchOperator,
    BranchPythonOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
)
from airloop.authoring.context import Context, get_current_context
from airloop.authoring.dag import DAG, register_test_runner
from airloop.authoring.dag_decorator import dag
from airloop.authoring.decorators import task
from airloop.authoring.edges import Label, chain, chain_linear, cross_downstream
from airloop.authoring.mapped import MappedOperator
from airloop.authoring.notifier import BaseNotifier
from airloop.authoring.operator import BaseOperator
from airloop.authoring.params import Param
from airloop.authoring.sensor import BaseSensor, PokeReturnValue
from airloop.authoring.setup_teardown import setup, teardown
from airloop.authoring.taskgroup import TaskGroup, task_group
from airloop.authoring.xcom_arg import XComArg
from airloop.core.masking import mask_secret
from airloop.core.states import DagRunState, TaskState
from airloop.core.trigger_rules import TriggerRule
from airloop.exceptions import (
    AirloopError,
    DagDefinitionError,
    DownstreamTasksSkipped,
    FailTask,
    SensorTimeout,
    SkipTask,
    TaskTimeout,
)
from airloop.runtime import delay, run_sync

if TYPE_CHECKING:
    from airloop.connections import Connection, Variable
    from airloop.engine.engine import Engine, run

__version__ = "0.1.0"


class _EngineTestRunner:
    """``dag.test()`` / ``dag.atest()``: the engine's, imported when first used (the
    engine pulls in SQLAlchemy; DAG files that never test should not pay for it)."""

    def test(self, dag: DAG, **options: Any) -> Any:
        from airloop.engine.testing import run_dag_test

        return run_dag_test(dag, **options)

    async def atest(self, dag: DAG, **options: Any) -> Any:
        from airloop.engine.testing import arun_dag_test

        return await arun_dag_test(dag, **options)


register_test_runner(_EngineTestRunner())


def __getattr__(name: str) -> Any:
    # The engine pulls in SQLAlchemy; DAG files import airloop and should not pay for it.
    if name in ("Engine", "run"):
        from airloop.engine import engine

        return getattr(engine, name)
    if name in ("Connection", "Variable"):  # imported when first used, as the engine
        import airloop.connections

        return getattr(airloop.connections, name)
    raise AttributeError(f"module 'airloop' has no attribute {name!r}")


__all__ = [
    "DAG",
    "AirloopError",
    "BaseBranchOperator",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensor",
    "BranchPythonOperator",
    "Connection",
    "Context",
    "DagDefinitionError",
    "DagRunState",
    "DownstreamTasksSkipped",
    "Engine",
    "FailTask",
    "Label",
    "LatestOnlyOperator",
    "MappedOperator",
    "Param",
    "PokeReturnValue",
    "SensorTimeout",
    "ShortCircuitOperator",
    "SkipTask",
    "TaskGroup",
    "TaskState",
    "TaskTimeout",
    "TriggerRule",
    "Variable",
    "XComArg",
    "__version__",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "delay",
    "get_current_context",
    "mask_secret",
    "run",
    "run_sync",
    "setup",
    "task",
    "task_group",
    "teardown",
]
