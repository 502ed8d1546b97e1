"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

# HTTP (issue 12)
from airloop.sensors.http import HttpSensor

__all__: list[str] = []
# HTTP (issue 12)
__all__ += ["HttpSensor"]
