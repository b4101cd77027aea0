"""Log-linear latency histograms (HDR-style buckets, 8 per power of two, ~12.5% resolution).

Used for the scheduler's per-priority completion latency and the pager's fault and
writeback latency.  Values are nanoseconds (``time.perf_counter_ns`` differences).
"""

from __future__ import annotations

from dataclasses import dataclass

_SUB_BITS = 3
_SUB = 1 << _SUB_BITS  # buckets per power of two
_LINEAR_LIMIT = 2 * _SUB  # values below this get one bucket each


def bucket_of(value_ns: int) -> int:
    """Index of the bucket holding ``value_ns`` (>= 0)."""
    if value_ns < _LINEAR_LIMIT:
        return max(value_ns, 0)
    shift = value_ns.bit_length() - (_SUB_BITS + 1)
    return shift * _SUB + (value_ns >> shift)


def bucket_floor(index: int) -> int:
    """Smallest value that falls in bucket ``index``."""
    if index < _LINEAR_LIMIT:
        return index
    shift, mantissa = divmod(index, _SUB)
    shift -= 1
    return (mantissa + _SUB) << shift


def bucket_ceil(index: int) -> int:
    """Largest value that falls in bucket ``index``."""
    return bucket_floor(index + 1) - 1


@dataclass(frozen=True, slots=True)
class HistogramSummary:
    """A histogram reduced to the figures reports use (nanoseconds)."""

    count: int
    mean_ns: float
    min_ns: int
    p50_ns: int
    p90_ns: int
    p99_ns: int
    max_ns: int


class LatencyHistogram:
    """Counts of latencies in log-linear buckets; percentiles report the bucket's upper edge."""

    __slots__ = ("_counts", "count", "max_ns", "min_ns", "total_ns")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record(self, value_ns: int) -> None:
        """Add one observation (negative values count as 0)."""
        if value_ns >= _LINEAR_LIMIT:
            shift = value_ns.bit_length() - (_SUB_BITS + 1)
            index = shift * _SUB + (value_ns >> shift)
        else:
            if value_ns < 0:  # noqa: PLR1730 - a compare, not a call, per I/O
                value_ns = 0
            index = value_ns
        counts = self._counts
        counts[index] = counts.get(index, 0) + 1
        count = self.count
        if value_ns < self.min_ns or not count:
            self.min_ns = value_ns
        if value_ns > self.max_ns:  # noqa: PLR1730 - a compare, not a call, per I/O
            self.max_ns = value_ns
        self.count = count + 1
        self.total_ns += value_ns

    def percentile(self, fraction: float) -> int:
        """The value below which ``fraction`` (0..1) of observations fall (bucket upper edge,
        clamped to the observed maximum); 0 for an empty histogram."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"percentile fraction must be within [0, 1], got {fraction}")
        if self.count == 0:
            return 0
        rank = max(1, -(-int(fraction * self.count * 1_000_000) // 1_000_000))
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                return min(bucket_ceil(index), self.max_ns)
        return self.max_ns

    def merge(self, other: LatencyHistogram) -> None:
        """Add every observation of ``other``."""
        for index, n in other._counts.items():
            self._counts[index] = self._counts.get(index, 0) + n
        if other.count:
            self.min_ns = other.min_ns if self.count == 0 else min(self.min_ns, other.min_ns)
            self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.total_ns += other.total_ns

    def summary(self) -> HistogramSummary:
        """Count, mean, min, p50, p90, p99 and max."""
        return HistogramSummary(
            count=self.count,
            mean_ns=self.total_ns / self.count if self.count else 0.0,
            min_ns=self.min_ns,
            p50_ns=self.percentile(0.50),
            p90_ns=self.percentile(0.90),
            p99_ns=self.percentile(0.99),
            max_ns=self.max_ns,
        )

    def buckets(self) -> list[tuple[int, int, int]]:
        """Non-empty buckets as ``(floor_ns, ceil_ns, count)``, ascending."""
        return [(bucket_floor(i), bucket_ceil(i), self._counts[i]) for i in sorted(self._counts)]
