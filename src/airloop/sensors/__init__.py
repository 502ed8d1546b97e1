"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

from airloop.sensors.http import HttpSensor
from airloop.sensors.sql import SqlSensor, SqlSensorFailure

__all__ = [
    "HttpSensor",
    "SqlSensor",
    "SqlSensorFailure",
]
