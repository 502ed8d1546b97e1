"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

from airloop.authoring.sensor import BaseSensor, PokeReturnValue
from airloop.sensors.bash import BashSensor
from airloop.sensors.external_task import ExternalTaskMarker, ExternalTaskSensor
from airloop.sensors.filesystem import FileSensor
from airloop.sensors.http import HttpSensor
from airloop.sensors.python import PythonSensor
from airloop.sensors.s3 import S3KeySensor
from airloop.sensors.sql import SqlSensor, SqlSensorFailure
from airloop.sensors.time_sensors import (
    DateTimeSensor,
    DayOfWeekSensor,
    TimeDeltaSensor,
    TimeSensor,
    WeekDay,
)

__all__ = [
    "BaseSensor",
    "BashSensor",
    "DateTimeSensor",
    "DayOfWeekSensor",
    "ExternalTaskMarker",
    "ExternalTaskSensor",
    "FileSensor",
    "HttpSensor",
    "PokeReturnValue",
    "PythonSensor",
    "S3KeySensor",
    "SqlSensor",
    "SqlSensorFailure",
    "TimeDeltaSensor",
    "TimeSensor",
    "WeekDay",
]
