"""airloop: a workflow orchestrator rebuilt around one asyncio event loop."""

from airloop.authoring.context import Context
from airloop.authoring.dag import DAG
from airloop.authoring.decorators import task
from airloop.authoring.mapped import MappedOperator
from airloop.authoring.operator import BaseOperator
from airloop.authoring.params import Param
from airloop.authoring.sensor import BaseSensor, PokeReturnValue
from airloop.authoring.xcom_arg import XComArg
from airloop.core.states import DagRunState, TaskState
from airloop.core.trigger_rules import TriggerRule
from airloop.exceptions import (
    AirloopError,
    DagDefinitionError,
    FailTask,
    SensorTimeout,
    SkipTask,
    TaskTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "DAG",
    "AirloopError",
    "BaseOperator",
    "BaseSensor",
    "Context",
    "DagDefinitionError",
    "DagRunState",
    "FailTask",
    "MappedOperator",
    "Param",
    "PokeReturnValue",
    "SensorTimeout",
    "SkipTask",
    "TaskState",
    "TaskTimeout",
    "TriggerRule",
    "XComArg",
    "__version__",
    "task",
]
