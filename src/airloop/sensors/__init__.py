"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

# -- SQL (issue 12: sensors/sql.py) ----------------------------------------------------
from airloop.sensors.sql import SqlSensor, SqlSensorFailure

__all__ = ["SqlSensor", "SqlSensorFailure"]
