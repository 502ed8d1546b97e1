"""The scheduler running in this process (``airloop standalone``), if any: its engine's
live numbers replace what a separate API server reads from the heartbeat row."""

from __future__ import annotations

from typing import Any

from airloop.engine.engine import Engine


def live_engine(app: Any) -> Engine | None:
    """The serving engine of ``app.state.scheduler`` (a SchedulerService), else None
    (an API server on its own, or the scheduler starting or stopped)."""
    service = getattr(app.state, "scheduler", None)
    engine: Engine | None = getattr(service, "engine", None)
    return engine


def live_loop_lag(app: Any) -> float | None:
    """The watchdog's latest loop lag (seconds) when the scheduler runs in this
    process, else None: then read the heartbeat row's ``loop_lag``. Use in /health."""
    engine = live_engine(app)
    if engine is None or engine.watchdog is None:
        return None
    return engine.watchdog.last_lag
