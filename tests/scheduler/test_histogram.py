"""Log-linear latency histograms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapio.scheduler.histogram import LatencyHistogram, bucket_ceil, bucket_floor, bucket_of


@given(st.integers(0, 10**12))
def test_every_value_falls_inside_its_bucket(value: int) -> None:
    index = bucket_of(value)
    assert bucket_floor(index) <= value <= bucket_ceil(index)


@given(st.integers(16, 10**12))
def test_buckets_are_within_an_eighth_of_their_floor(value: int) -> None:
    index = bucket_of(value)
    width = bucket_ceil(index) - bucket_floor(index) + 1
    assert width * 8 <= bucket_floor(index)


def test_small_values_are_exact() -> None:
    assert [bucket_of(v) for v in range(16)] == list(range(16))


def test_percentiles_report_the_bucket_upper_edge_clamped_to_the_maximum() -> None:
    hist = LatencyHistogram()
    for value in [10] * 98 + [1000, 5000]:
        hist.record(value)
    summary = hist.summary()
    assert summary.count == 100
    assert summary.p50_ns == 10
    assert summary.p99_ns == bucket_ceil(bucket_of(1000))
    assert summary.max_ns == 5000
    assert hist.percentile(1.0) == 5000
    assert summary.min_ns == 10
    assert summary.mean_ns == pytest.approx((980 + 1000 + 5000) / 100)


def test_empty_histogram_reports_zeros() -> None:
    summary = LatencyHistogram().summary()
    assert (summary.count, summary.p99_ns, summary.max_ns, summary.mean_ns) == (0, 0, 0, 0.0)


def test_merge_adds_observations() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(100)
    b.record(7)
    b.record(300)
    a.merge(b)
    assert (a.count, a.min_ns, a.max_ns, a.total_ns) == (3, 7, 300, 407)
    assert [count for _, _, count in a.buckets()] == [1, 1, 1]


def test_negative_values_count_as_zero_and_bad_fractions_are_refused() -> None:
    hist = LatencyHistogram()
    hist.record(-5)
    assert hist.min_ns == 0
    with pytest.raises(ValueError, match="within"):
        hist.percentile(1.5)
