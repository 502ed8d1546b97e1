"""A snapshot of a running engine's numbers, for ``/metrics`` (ADR 0040).

Everything here is read from counters the engine keeps anyway (the watchdog, the
scheduler, the store's writer, the admission ledgers, the executors, the AWS hub):
taking a snapshot costs a few dict copies on the loop, nothing per task instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airloop.core.stats import HistogramSnapshot

if TYPE_CHECKING:
    from airloop.engine.engine import Engine


@dataclass(frozen=True, slots=True)
class Slots:
    used: int
    #: None: unbounded (the async executor without a limit).
    capacity: int | None


@dataclass(frozen=True, slots=True)
class EngineStats:
    loop_lag: float
    loop_lag_max: float
    loop_lags: HistogramSnapshot | None
    loop_blocks: int
    ticks: HistogramSnapshot
    task_durations: Mapping[str, HistogramSnapshot]
    db_writes: HistogramSnapshot
    pools: Mapping[str, Slots]
    executors: Mapping[str, Slots]
    active_runs: int
    aws_calls: Mapping[str, int] = field(default_factory=dict)
    aws_throttles: Mapping[str, int] = field(default_factory=dict)


def engine_stats(engine: Engine) -> EngineStats | None:
    """The engine's numbers now; None when it is not serving."""
    parts = engine.parts()
    if parts is None:
        return None
    scheduler, admission, executors = parts
    watchdog = engine.watchdog
    ledger = admission.pools
    pools = {name: Slots(ledger.used(name), cap) for name, cap in ledger.pools.items()}
    slots = {
        name: Slots(executor.running, executor.capacity)
        for name, executor in executors.started.items()
    }
    calls: dict[str, int] = {}
    throttles: dict[str, int] = {}
    hub = engine.resources.peek("aws") if engine.resources is not None else None
    if hub is not None:  # an AwsHub (not imported here: aiobotocore is heavy)
        calls = dict(hub.calls)
        throttles = dict(hub.throttles())
    return EngineStats(
        loop_lag=watchdog.last_lag if watchdog else 0.0,
        loop_lag_max=watchdog.max_lag if watchdog else 0.0,
        loop_lags=watchdog.lags.snapshot() if watchdog else None,
        loop_blocks=watchdog.blocked_count if watchdog else 0,
        ticks=scheduler.tick_seconds.snapshot(),
        task_durations=scheduler.task_seconds.snapshot(),
        db_writes=engine.store.write_seconds.snapshot(),
        pools=pools,
        executors=slots,
        active_runs=scheduler.active_runs,
        aws_calls=calls,
        aws_throttles=throttles,
    )
