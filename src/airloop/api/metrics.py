"""``GET /metrics``: Prometheus text format (docs/metrics.md, ADR 0040).

Each app has its own registry (``CollectorRegistry``), never the process-global one:
tests and ``standalone`` build several apps. One collector turns two sources into
metric families at scrape time:

- the database (every API server): runs and task instances by DAG and state, the
  scheduler heartbeat's loop lag, and each live scheduler's heartbeat age and DAGs
  leased (the registry, ADR 0041) -- two ``GROUP BY`` queries and the registry's rows,
  cached for ``DB_CACHE_SECONDS`` so a scrape storm costs one query per period;
- the engine, when the scheduler runs in this process (``airloop standalone``): loop
  lag (the watchdog's), tick and task durations, database write latency, pool and
  executor slots, AWS calls and throttles -- read from in-process counters
  (``airloop.engine.stats``).

Labels are bounded: dag_id, pool, action, state, executor, scheduler_id (live schedulers
only); never run_id or map_index.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from airloop.api.deps import current_user
from airloop.api.live import live_engine
from airloop.api.params import unknown_params
from airloop.core.stats import HistogramSnapshot
from airloop.engine.stats import EngineStats, engine_stats
from airloop.exceptions import DatabaseError
from airloop.settings import Settings
from airloop.store.records import HeartbeatRow
from airloop.store.runs import Store
from airloop.store.scheduler_status import SchedulerStatus, heartbeat_limit
from airloop.store.service import ServiceStore
from airloop.store.state_counts import StateCounts, state_counts

#: How long the database's numbers are reused between scrapes.
DB_CACHE_SECONDS = 5.0

#: Behind the authentication middleware; the dependency says so again (any user).
router = APIRouter(dependencies=[Depends(current_user)])
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DatabaseNumbers:
    counts: StateCounts
    #: The newest live scheduler's row (else the newest that ever beat).
    heartbeat: HeartbeatRow | None
    #: Every scheduler alive now (ADR 0041).
    live: tuple[SchedulerStatus, ...] = ()


class DatabaseCache:
    """The database's numbers, fetched at most once per ``ttl`` (concurrent scrapes
    share one fetch)."""

    def __init__(self, ttl: float = DB_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._lock = asyncio.Lock()
        self._value: DatabaseNumbers | None = None
        self._at = -1e18

    async def get(self, store: Store, stale_after: float) -> DatabaseNumbers:
        async with self._lock:
            if self._value is None or time.monotonic() - self._at >= self.ttl:
                counts = await state_counts(store)
                service = ServiceStore(store)
                statuses = await service.schedulers(stale_after=stale_after)
                live = tuple(s for s in statuses if s.alive)
                newest = live[-1] if live else (statuses[-1] if statuses else None)
                heartbeat = newest.row if newest else await service.latest_heartbeat()
                self._value = DatabaseNumbers(counts, heartbeat, live)
                self._at = time.monotonic()
            return self._value


def _histogram(
    name: str, doc: str, label: str | None, values: Mapping[str, HistogramSnapshot]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label] if label else None)
    for value, snap in sorted(values.items()):
        buckets = [
            ("+Inf" if bound == float("inf") else repr(bound), float(n))
            for bound, n in snap.cumulative()
        ]
        family.add_metric([value] if label else [], buckets, snap.total)
    return family


def _db_metrics(db: DatabaseNumbers, live_lag: bool) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "airloop_dag_runs",
        "DAG runs in the database, by DAG and state.",
        labels=["dag_id", "state"],
    )
    for row in db.counts.runs:
        runs.add_metric([row.dag_id, row.state], row.count)
    yield runs
    tis = GaugeMetricFamily(
        "airloop_task_instances",
        "Task instances in the database, by DAG and state.",
        labels=["dag_id", "state"],
    )
    for row in db.counts.task_instances:
        tis.add_metric([row.dag_id, row.state], row.count)
    yield tis
    yield from _scheduler_metrics(db.live)
    beat = db.heartbeat
    if beat is None:
        return
    yield GaugeMetricFamily(
        "airloop_scheduler_heartbeat_timestamp_seconds",
        "When the latest scheduler heartbeat was written (Unix time).",
        value=beat.heartbeat_at.timestamp(),
    )
    if not live_lag and beat.loop_lag is not None:
        yield GaugeMetricFamily(
            "airloop_scheduler_loop_lag_seconds",
            "Scheduler event-loop lag (from the heartbeat row; live in standalone).",
            value=beat.loop_lag,
        )


def _scheduler_metrics(live: tuple[SchedulerStatus, ...]) -> Iterator[Metric]:
    """Each live scheduler (labelled by its registry id: as many as are alive)."""
    yield GaugeMetricFamily(
        "airloop_schedulers_alive",
        "Schedulers alive now (their registry expiry ahead on the database's clock).",
        value=len(live),
    )
    age = GaugeMetricFamily(
        "airloop_scheduler_heartbeat_age_seconds",
        "Seconds since each live scheduler's heartbeat, on the database's clock.",
        labels=["scheduler_id"],
    )
    owned = GaugeMetricFamily(
        "airloop_scheduler_dags_owned",
        "DAGs each live scheduler holds the lease of.",
        labels=["scheduler_id"],
    )
    for status in live:
        age.add_metric([str(status.row.id)], status.heartbeat_age)
        owned.add_metric([str(status.row.id)], status.row.dags_owned or 0)
    yield age
    yield owned


def _engine_metrics(stats: EngineStats) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "airloop_scheduler_loop_lag_seconds",
        "Scheduler event-loop lag: the watchdog's latest ping (seconds).",
        value=stats.loop_lag,
    )
    yield GaugeMetricFamily(
        "airloop_scheduler_loop_lag_max_seconds",
        "Largest event-loop lag since the scheduler started (seconds).",
        value=stats.loop_lag_max,
    )
    if stats.loop_lags is not None:
        yield _histogram(
            "airloop_scheduler_loop_lag_pings_seconds",
            "Event-loop lag of every watchdog ping (about 10 a second).",
            None,
            {"": stats.loop_lags},
        )
    yield CounterMetricFamily(
        "airloop_scheduler_loop_blocks",
        "Times the loop was blocked longer than loop_block_threshold.",
        value=stats.loop_blocks,
    )
    yield _histogram(
        "airloop_scheduler_tick_duration_seconds",
        "Duration of one scheduler tick (route, plan, write, submit).",
        None,
        {"": stats.ticks},
    )
    yield _histogram(
        "airloop_task_duration_seconds",
        "Duration of finished task instance tries, by DAG.",
        "dag_id",
        stats.task_durations,
    )
    yield _histogram(
        "airloop_db_write_duration_seconds",
        "Duration of one committed batch of the scheduler's writes.",
        None,
        {"": stats.db_writes},
    )
    yield GaugeMetricFamily(
        "airloop_active_runs", "DAG runs the scheduler is driving now.", value=stats.active_runs
    )
    used = GaugeMetricFamily("airloop_pool_slots_used", "Pool slots taken.", labels=["pool"])
    free = GaugeMetricFamily("airloop_pool_slots_open", "Pool slots free.", labels=["pool"])
    for pool, slots in sorted(stats.pools.items()):
        used.add_metric([pool], slots.used)
        free.add_metric([pool], max(0, (slots.capacity or 0) - slots.used))
    yield used
    yield free
    ex_used = GaugeMetricFamily(
        "airloop_executor_slots_used", "Task instances an executor runs now.", labels=["executor"]
    )
    ex_cap = GaugeMetricFamily(
        "airloop_executor_slots_capacity",
        "Task instances an executor can run at once (absent: unbounded).",
        labels=["executor"],
    )
    for name, slots in sorted(stats.executors.items()):
        ex_used.add_metric([name], slots.used)
        if slots.capacity is not None:
            ex_cap.add_metric([name], slots.capacity)
    yield ex_used
    yield ex_cap
    yield _counter_by(
        "airloop_aws_calls", "AWS API calls made (each try), by action.", stats.aws_calls
    )
    yield _counter_by(
        "airloop_aws_throttles",
        "AWS calls answered with throttling, by action.",
        stats.aws_throttles,
    )


def _counter_by(name: str, doc: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["action"])
    for action, n in sorted(values.items()):
        family.add_metric([action], n)
    return family


class AirloopCollector(Collector):
    """Yields what ``AppMetrics.render`` gathered just before (collect() is synchronous;
    the database is not)."""

    def __init__(self) -> None:
        self.db: DatabaseNumbers | None = None
        self.engine: EngineStats | None = None

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "airloop_database_up",
            "1 if this scrape could read the database, 0 if not.",
            value=0 if self.db is None else 1,
        )
        if self.db is not None:
            yield from _db_metrics(self.db, live_lag=self.engine is not None)
        if self.engine is not None:
            yield from _engine_metrics(self.engine)


class AppMetrics:
    """One app's registry, collector and database cache."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = AirloopCollector()
        self.registry.register(self.collector)
        self.cache = DatabaseCache()

    async def render(self, store: Store, app: object) -> bytes:
        try:
            db: DatabaseNumbers | None = await self.cache.get(store, _stale_after(app))
        except DatabaseError as exc:
            # The engine's numbers are still worth a scrape; the failure is a metric.
            log.warning("/metrics: the database could not be read: %s", exc)
            db = None
        engine = live_engine(app)
        # No await from here on: no other scrape can refill the collector meanwhile.
        self.collector.db = db
        self.collector.engine = engine_stats(engine) if engine is not None else None
        return generate_latest(self.registry)


def _stale_after(app: object) -> float:
    settings: Settings = app.state.settings  # type: ignore[attr-defined]
    return heartbeat_limit(settings.scheduler_poll_interval)


def app_metrics(app: object) -> AppMetrics:
    state = app.state  # type: ignore[attr-defined]
    found: AppMetrics | None = getattr(state, "metrics", None)
    if found is None:
        found = AppMetrics()
        state.metrics = found
    return found


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this server's (and its scheduler's) numbers."""
    message = unknown_params(request, ())
    if message is not None:
        return JSONResponse({"detail": message}, status_code=400)
    body = await app_metrics(request.app).render(request.app.state.store, request.app)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
