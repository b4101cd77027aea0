"""Slot allocation for a swap area, with swap clusters.

Linux groups swap slots into clusters of ``SWAPFILE_CLUSTER`` (256) slots and lets an
allocator keep filling its current cluster, so that pages swapped out one after another land
in consecutive slots and can be written, and later read back, as one merged request
(``mm/swapfile.c``, ``scan_swap_map_try_ssd_cluster``).  :class:`SlotMap` does the same: the
fast path takes the next slot of the current cluster; when it is used up, a wholly free
cluster is taken; only when none is left does it scan for any free run.
"""

from __future__ import annotations

from collections import deque

from swapio.errors import AreaFullError, SlotRangeError, UsageError

SWAPFILE_CLUSTER = 256


class SlotMap:
    """Which slots of an area hold live data; hands out consecutive runs of free slots."""

    def __init__(self, pages: int, cluster: int = SWAPFILE_CLUSTER) -> None:
        if pages <= 0:
            raise UsageError(f"slot map needs at least one slot, got {pages}")
        if cluster <= 0:
            raise UsageError(f"cluster size must be positive, got {cluster}")
        self.pages = pages
        self.cluster = cluster
        self._used = bytearray(pages)
        nclusters = -(-pages // cluster)
        self._cluster_used = [0] * nclusters
        self._free_clusters: deque[int] = deque(range(nclusters))
        self._next = 0  # next slot to try in the current cluster
        self._cluster_end = 0  # end of the current cluster (exclusive); 0 = none
        self.in_use = 0

    @property
    def free(self) -> int:
        """Number of free slots."""
        return self.pages - self.in_use

    def is_used(self, slot: int) -> bool:
        """Return True when ``slot`` holds live data."""
        self._check(slot, 1)
        return bool(self._used[slot])

    def alloc(self, count: int = 1) -> int:
        """Allocate ``count`` consecutive free slots and return the first.

        Raises :class:`AreaFullError` when no run of that length is free.
        """
        if count <= 0:
            raise UsageError(f"slot count must be positive, got {count}")
        start = self._next
        if start + count <= self._cluster_end and not any(self._used[start : start + count]):
            self._take(start, count)
            return start
        if count <= self.cluster:
            while self._free_clusters:
                index = self._free_clusters.popleft()
                if self._cluster_used[index]:
                    continue  # stale entry: the cluster was partly used by the slow path
                first = index * self.cluster
                end = min(first + self.cluster, self.pages)
                if end - first < count:
                    continue
                self._cluster_end = end
                self._take(first, count)
                return first
        first = self._scan(count)
        self._cluster_end = min(
            ((first + count - 1) // self.cluster + 1) * self.cluster, self.pages
        )
        self._take(first, count)
        return first

    def mark_used(self, slot: int, count: int = 1) -> None:
        """Record that ``count`` slots from ``slot`` hold data (e.g. after a reload)."""
        self._check(slot, count)
        for s in range(slot, slot + count):
            if not self._used[s]:
                self._used[s] = 1
                self._cluster_used[s // self.cluster] += 1
                self.in_use += 1

    def release(self, slot: int, count: int = 1) -> None:
        """Free ``count`` slots from ``slot``; freeing a free slot is an error (a double free)."""
        self._check(slot, count)
        for s in range(slot, slot + count):
            if not self._used[s]:
                raise UsageError(f"slot {s} is already free (double free)")
        for s in range(slot, slot + count):
            self._used[s] = 0
            index = s // self.cluster
            self._cluster_used[index] -= 1
            if self._cluster_used[index] == 0:
                self._free_clusters.append(index)
        self.in_use -= count

    def _take(self, first: int, count: int) -> None:
        for s in range(first, first + count):
            self._used[s] = 1
            self._cluster_used[s // self.cluster] += 1
        self.in_use += count
        self._next = first + count

    def _scan(self, count: int) -> int:
        run = 0
        for s in range(self.pages):
            run = 0 if self._used[s] else run + 1
            if run == count:
                return s - count + 1
        raise AreaFullError(
            f"no run of {count} free slot(s) left ({self.free} of {self.pages} free)"
        )

    def _check(self, slot: int, count: int) -> None:
        if count <= 0 or slot < 0 or slot + count > self.pages:
            raise SlotRangeError(
                f"slots {slot}..{slot + count - 1} out of range for an area of {self.pages} slots"
            )
