from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapio.errors import AreaFullError, SlotRangeError, UsageError
from swapio.slotmap import SlotMap


def test_consecutive_allocations_get_consecutive_slots() -> None:
    slots = SlotMap(1024)
    assert [slots.alloc() for _ in range(10)] == list(range(10))


def test_runs_stay_within_a_cluster_when_possible() -> None:
    slots = SlotMap(1024, cluster=256)
    slots.alloc(250)
    second = slots.alloc(16)  # does not fit in the rest of cluster 0: takes a free cluster
    assert second == 256


def test_freed_cluster_is_reused() -> None:
    slots = SlotMap(512, cluster=256)
    first = slots.alloc(256)
    slots.alloc(256)
    slots.release(first, 256)
    assert slots.alloc(8) == 0


def test_full_area_raises() -> None:
    slots = SlotMap(4, cluster=2)
    slots.alloc(4)
    with pytest.raises(AreaFullError):
        slots.alloc()


def test_double_free_and_range_errors() -> None:
    slots = SlotMap(8)
    s = slots.alloc()
    slots.release(s)
    with pytest.raises(UsageError, match="double free"):
        slots.release(s)
    with pytest.raises(SlotRangeError):
        slots.release(8)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40)), max_size=60))
def test_allocations_never_overlap(ops: list[tuple[bool, int]]) -> None:
    slots = SlotMap(300, cluster=32)
    live: list[tuple[int, int]] = []
    owned: set[int] = set()
    for do_alloc, n in ops:
        if do_alloc or not live:
            try:
                first = slots.alloc(n)
            except AreaFullError:
                continue
            run = set(range(first, first + n))
            assert not run & owned
            owned |= run
            live.append((first, n))
        else:
            first, count = live.pop(n % len(live))
            slots.release(first, count)
            owned -= set(range(first, first + count))
        assert slots.in_use == len(owned)
