"""Cross-DAG operators' arguments: what a DAG file gets wrong is a one-line error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airloop import DAG
from airloop.exceptions import AirloopError, DagDefinitionError
from airloop.operators import TriggerDagRunOperator
from airloop.operators.trigger_dagrun import parse_logical_date
from airloop.sensors import ExternalTaskMarker, ExternalTaskSensor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"execution_date": "2026-01-01"}, "use logical_date"),
        ({"deferrable": True}, "deferrable"),
        ({"allowed_states": ["nope"]}, "allowed_states has 'nope', not a DAG run state"),
        ({"failed_states": ["success"]}, "success is in both allowed_states and failed_states"),
        ({"allowed_states": "success"}, "must be a list of states"),
        ({"poke_interval": 0}, "poke_interval must be > 0"),
        ({"conf": [1]}, "conf must be a dict"),
    ],
)
def test_trigger_arguments(kwargs: dict[str, Any], message: str) -> None:
    with DAG("t"), pytest.raises(DagDefinitionError, match=message):
        TriggerDagRunOperator(task_id="trigger", trigger_dag_id="other", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"external_task_id": "a", "external_task_ids": ["b"]}, "not both"),
        ({"external_task_id": "a", "external_task_group_id": "g"}, "not both"),
        ({"external_task_ids": "a"}, "must be a list of task ids"),
        ({"external_task_ids": ["a", "a"]}, "duplicates"),
        ({"execution_delta": timedelta(1), "execution_date_fn": lambda d: d}, "not both"),
        ({"execution_delta": 3600}, "execution_delta must be a timedelta"),
        # Whole runs: DAG run states; tasks: task instance states.
        ({"allowed_states": ["upstream_failed"]}, "not a DAG run state"),
        ({"external_task_id": "a", "allowed_states": ["queuedd"]}, "not a task instance state"),
        ({"failed_states": ["success"]}, "in allowed_states and in failed_states"),
    ],
)
def test_sensor_arguments(kwargs: dict[str, Any], message: str) -> None:
    with DAG("s"), pytest.raises(DagDefinitionError, match=message):
        ExternalTaskSensor(task_id="wait", external_dag_id="other", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recursion_depth": 0}, "recursion_depth should be a positive integer"),
        ({"recursion_depth": True}, "recursion_depth must be an integer"),
        ({"logical_date": 5}, "logical_date should be a datetime or a templated string"),
    ],
)
def test_marker_arguments(kwargs: dict[str, Any], message: str) -> None:
    with DAG("m"), pytest.raises(DagDefinitionError, match=message):
        ExternalTaskMarker(task_id="mark", external_dag_id="o", external_task_id="t", **kwargs)


def test_logical_dates_as_given() -> None:
    assert parse_logical_date("t", None) is None
    assert parse_logical_date("t", "2026-01-02T03:04") == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    with pytest.raises(AirloopError, match="'yesterday' is not an ISO 8601"):
        parse_logical_date("t", "yesterday")
