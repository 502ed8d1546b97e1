"""Sensors: tasks that wait for a condition, sleeping on the event loop between pokes."""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, cast

from airloop.authoring.airflow_args import SENSOR_ARGS, Unsupported
from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator, _seconds
from airloop.exceptions import DagDefinitionError, SensorTimeout, SkipTask
from airloop.runtime import run_sync


class PokeReturnValue:
    """Return from ``poke`` to finish the sensor and also pass a value downstream."""

    def __init__(self, is_done: bool, xcom_value: Any = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return self.is_done


class BaseSensor(BaseOperator):
    """Subclass and implement ``poke(context) -> bool``, as ``def`` or ``async def``.

    Between pokes the sensor awaits ``asyncio.sleep``: a waiting sensor holds no thread
    and no process. A sync ``poke`` runs in the executor's thread pool, one poke at a
    time. ``timeout`` bounds the whole wait; past it the task fails without retry, or
    is skipped with ``soft_fail=True``. ``exponential_backoff`` doubles the interval
    after each poke (with jitter), capped by ``max_wait``. Airflow's ``mode="poke"``
    is accepted (it is what happens); ``mode="reschedule"`` and ``deferrable=True``
    are not supported yet.
    """

    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = SENSOR_ARGS

    def __init__(
        self,
        *,
        poke_interval: timedelta | float = 60.0,
        timeout: timedelta | float = 7 * 24 * 3600.0,
        soft_fail: bool = False,
        exponential_backoff: bool = False,
        max_wait: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"sensor {self.task_id!r}"
        interval = _seconds(f"{where}: poke_interval", poke_interval)
        limit = _seconds(f"{where}: timeout", timeout)
        assert interval is not None
        assert limit is not None
        if interval < 0 or limit < 0:
            raise DagDefinitionError(f"{where}: poke_interval and timeout must be >= 0")
        self.poke_interval = interval
        self.timeout = limit
        self.soft_fail = soft_fail
        self.exponential_backoff = exponential_backoff
        self.max_wait = _seconds(f"{where}: max_wait", max_wait, allow_none=True)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        raise NotImplementedError(f"{type(self).__name__} must implement poke(context)")

    def _next_interval(self, pokes: int, rng: random.Random) -> float:
        if not self.exponential_backoff:
            return self.poke_interval
        interval = self.poke_interval * 2.0 ** min(pokes - 1, 62)
        interval = interval / 2 + rng.uniform(0, interval / 2)
        if self.max_wait is not None:
            interval = min(interval, self.max_wait)
        return interval

    async def execute(self, context: Context) -> Any:
        poke_is_async = inspect.iscoroutinefunction(self.poke)
        started = time.monotonic()
        deadline = started + self.timeout
        rng = random.Random()
        pokes = 0
        while True:
            pokes += 1
            if poke_is_async:
                result = await cast("Awaitable[bool | PokeReturnValue]", self.poke(context))
            else:
                result = await run_sync(self.poke, context)
            if result:
                return result.xcom_value if isinstance(result, PokeReturnValue) else None
            now = time.monotonic()
            if now >= deadline:
                message = (
                    f"sensor {self.task_id!r} timed out after {now - started:.1f}s "
                    f"({pokes} pokes, timeout {self.timeout:g}s)"
                )
                if self.soft_fail:
                    raise SkipTask(message)
                raise SensorTimeout(message)
            interval = self._next_interval(pokes, rng)
            await asyncio.sleep(min(interval, max(0.0, deadline - now)))
