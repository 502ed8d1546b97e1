"""The plain counters behind /metrics: buckets are inclusive upper bounds, as in Prometheus."""

from __future__ import annotations

from airloop.core.stats import Histogram, HistogramsByLabel


def test_a_value_on_a_bound_counts_in_that_bucket_and_cumulative_ends_with_inf() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(value)
    snap = h.snapshot()
    assert snap.counts == (2, 2, 1)
    assert snap.count == 5
    assert snap.total == 0.05 + 0.1 + 0.5 + 1.0 + 7.0
    assert snap.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]


def test_a_snapshot_does_not_move_with_later_observations() -> None:
    h = Histogram((1.0,))
    h.observe(0.5)
    snap = h.snapshot()
    h.observe(0.5)
    assert snap.count == 1
    assert h.snapshot().count == 2


def test_one_histogram_per_label() -> None:
    by_dag = HistogramsByLabel((1.0,))
    assert by_dag.of("a") is by_dag.of("a")
    by_dag.of("a").observe(2.0)
    by_dag.of("b").observe(0.5)
    snaps = by_dag.snapshot()
    assert snaps["a"].counts == (0, 1)
    assert snaps["b"].counts == (1, 0)
