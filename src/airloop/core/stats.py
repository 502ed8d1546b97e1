"""Cheap in-process counters the engine, the store and the watchdog record into, for
``/metrics`` to read (ADR 0040). Plain Python, no metrics library: recording is a
``bisect`` and two additions, so the hot paths (every tick, every finished task
instance, every write) do not notice it. Readers take ``snapshot()``s.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

#: Seconds: a tick, a database write (milliseconds to a few seconds).
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds: how long a task instance ran (a fraction of a second to hours).
TASK_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Upper bounds (seconds), each bucket's own count (the last one: above every
    bound), and the sum of the values observed."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, values <= it) pairs ending with (+inf, count), as Prometheus has them."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class Histogram:
    """Counts of observed values by bucket; not thread-safe beyond the GIL (one writer)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = FAST_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.total)


class HistogramsByLabel:
    """One histogram per label value (a DAG id): bounded by the DAGs a process runs."""

    __slots__ = ("bounds", "by_label")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.by_label: dict[str, Histogram] = {}

    def of(self, label: str) -> Histogram:
        found = self.by_label.get(label)
        if found is None:
            found = self.by_label[label] = Histogram(self.bounds)
        return found

    def snapshot(self) -> dict[str, HistogramSnapshot]:
        return {label: h.snapshot() for label, h in list(self.by_label.items())}
