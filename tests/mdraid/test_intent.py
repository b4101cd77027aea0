"""The write-intent state machine: md's counters, flush-before-write and two-sweep clear."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_mdraid import Bitmap, BitmapState, WriteIntent
from swapio_mdraid._intent import NEEDED_MASK, ON_DISK, OVERFLOW, RESYNC_MASK, CounterOverflow

PAGE = 512  # small pages so that chunks span several bitmap pages


def clean_intent(chunks: int = 8192) -> WriteIntent:
    bitmap = Bitmap.create(sync_size_bytes=chunks * 4096, chunk_size=4096, all_dirty=False)
    return WriteIntent(bitmap, PAGE)


def test_first_write_sets_the_bit_and_asks_to_flush_its_page() -> None:
    intent = clean_intent()
    intent.start_write(range(5000, 5001))
    assert intent.bitmap.test(5000)
    assert intent.counters[5000] == 3  # case 0: set bit, fall through to 2, then ++
    # chunk 5000 is at byte 256 + 625 = 881 -> page 1 of 512-byte pages
    assert intent.flush_before_write() == [1]
    assert intent.flush_before_write() == []  # already flushed


def test_second_concurrent_write_needs_no_flush() -> None:
    intent = clean_intent()
    intent.start_write(range(3, 4))
    intent.flush_before_write()
    intent.start_write(range(3, 4))
    assert intent.counters[3] == 4
    assert intent.flush_before_write() == []


def test_bit_clears_only_after_two_sweeps_without_writes() -> None:
    intent = clean_intent()
    intent.start_write(range(10, 12))
    intent.flush_before_write()
    intent.end_write(range(10, 12), success=True)
    assert intent.counters[10] == 2
    first = intent.sweep()
    assert intent.bitmap.test(10)
    assert intent.counters[10] == 1
    assert 0 not in first or intent.bitmap.test(10)
    second = intent.sweep()
    assert not intent.bitmap.test(10)
    assert not intent.bitmap.test(11)
    assert intent.page_of(10) in second
    assert intent.idle


def test_a_write_between_sweeps_keeps_the_bit() -> None:
    intent = clean_intent()
    intent.start_write(range(7, 8))
    assert intent.flush_before_write() == [0]
    intent.end_write(range(7, 8), success=True)
    intent.sweep()  # 2 -> 1
    intent.start_write(range(7, 8))  # 1 -> 2 -> 3, no new flush needed
    assert intent.flush_before_write() == []
    intent.end_write(range(7, 8), success=True)
    intent.sweep()
    assert intent.bitmap.test(7)
    intent.sweep()
    assert not intent.bitmap.test(7)


def test_a_sweep_leaves_set_bits_to_the_next_flush() -> None:
    """Writers wait for the flush that takes their page (plugging), so a sweep must not."""
    intent = clean_intent()
    intent.start_write(range(7, 8))
    assert intent.has_dirty
    intent.sweep()
    assert intent.has_dirty
    assert intent.flush_before_write() == [0]
    assert not intent.has_dirty


def test_pages_dirtied_by_many_writes_go_in_one_flush() -> None:
    intent = clean_intent(65536)
    for chunk in (3, 9, 40000):  # 40000: a bit on the second page of a 4 KiB-page image
        intent.start_write(range(chunk, chunk + 1))
    assert intent.flush_before_write() == [0, intent.page_of(40000)]
    assert intent.flush_before_write() == []


def test_in_flight_write_blocks_the_clear() -> None:
    intent = clean_intent()
    intent.start_write(range(1, 2))
    for _ in range(4):
        intent.sweep()
    assert intent.bitmap.test(1)


def test_failed_write_sets_needed_and_keeps_the_bit_forever() -> None:
    intent = clean_intent()
    intent.start_write(range(2, 3))
    intent.end_write(range(2, 3), success=False)
    assert intent.counters[2] & NEEDED_MASK
    for _ in range(5):
        intent.sweep()
    assert intent.bitmap.test(2)
    assert intent.needs_sync(2)


def test_degraded_array_does_not_advance_events_cleared() -> None:
    intent = clean_intent()
    intent.bump_events()
    intent.bump_events()
    intent.degraded = True
    intent.start_write(range(1))
    intent.end_write(range(1), success=True)
    assert intent.bitmap.superblock.events_cleared == 0
    intent.degraded = False
    intent.start_write(range(1))
    intent.end_write(range(1), success=True)
    assert intent.bitmap.superblock.events_cleared == 2
    assert intent.sweep()[0] == 0  # superblock before cleared bits


def test_bump_events_dirties_the_superblock_page() -> None:
    intent = clean_intent()
    assert intent.bump_events() == 1
    assert intent.flush_before_write() == [0]
    assert intent.bitmap.superblock.events == 1


def test_loaded_set_bits_become_needed_counters() -> None:
    bitmap = Bitmap.create(sync_size_bytes=64 * 4096, chunk_size=4096, all_dirty=False)
    bitmap.set(5)
    intent = WriteIntent(bitmap, PAGE)
    assert intent.counters[5] == 2 | NEEDED_MASK
    for _ in range(3):
        intent.sweep()
    assert bitmap.test(5)


def test_stale_bitmap_means_full_resync() -> None:
    bitmap = Bitmap.create(sync_size_bytes=64 * 4096, chunk_size=4096, all_dirty=False)
    bitmap.update(state=BitmapState.STALE)
    intent = WriteIntent(bitmap, PAGE)
    assert bitmap.count_dirty() == 64
    assert not bitmap.superblock.state & BitmapState.STALE
    assert intent.flush_before_write() == [0]


def test_sync_moves_needed_to_resync_then_lazily_clears() -> None:
    bitmap = Bitmap.create(sync_size_bytes=64 * 4096, chunk_size=4096, all_dirty=False)
    bitmap.set(9)
    intent = WriteIntent(bitmap, PAGE)
    assert intent.start_sync(9)
    assert intent.counters[9] & RESYNC_MASK
    assert not intent.start_sync(10)
    intent.end_sync(9, aborted=False)
    intent.sweep()
    intent.sweep()
    assert not bitmap.test(9)


def test_aborted_sync_puts_needed_back() -> None:
    bitmap = Bitmap.create(sync_size_bytes=64 * 4096, chunk_size=4096, all_dirty=False)
    bitmap.set(9)
    intent = WriteIntent(bitmap, PAGE)
    intent.start_sync(9)
    intent.end_sync(9, aborted=True)
    assert intent.counters[9] & NEEDED_MASK
    intent.sweep()
    intent.sweep()
    assert bitmap.test(9)


def test_counter_overflow_is_reported() -> None:
    intent = clean_intent(8)
    intent.counters[0] = 0x3FFF
    assert not intent.can_start(range(1))
    with pytest.raises(CounterOverflow):
        intent.start_write(range(1))


@pytest.mark.parametrize(
    "before",
    [
        [0, 0x3FFF],  # a clean chunk, then one at the maximum
        [3, 0x3FFF],  # a chunk with a write in flight (counted at once), then the maximum
        [2, 0, 0x3FFF],  # on disk, clean, maximum: both ways of counting, then undone
        [0x3FFF, 2],
    ],
)
def test_a_write_on_a_chunk_at_the_counter_maximum_is_not_counted(before: list[int]) -> None:
    """try_start_write (the mirror's one-pass start) says OVERFLOW and changes nothing, even
    when earlier chunks of the same write could have been counted."""
    intent = clean_intent(8)
    for chunk, counter in enumerate(before):
        intent.counters[chunk] = counter
        if counter:
            intent.bitmap.set(chunk)
    assert intent.try_start_write(range(len(before))) == OVERFLOW
    assert list(intent.counters[: len(before)]) == before
    assert [intent.bitmap.test(c) for c in range(len(before))] == [bool(c) for c in before]
    assert intent.flush_before_write() == []


def test_events_cleared_follows_every_later_bump_of_events() -> None:
    """A successful write after each array state change moves events_cleared up again."""
    intent = clean_intent(8)
    for events in (1, 2, 3):
        assert intent.bump_events() == events
        intent.start_write(range(1))
        intent.end_write(range(1), success=True)
        assert intent.bitmap.superblock.events_cleared == events
    intent.start_write(range(1))
    intent.end_write(range(1), success=True)
    assert intent.bitmap.superblock.events_cleared == 3


def test_a_write_whose_bits_are_on_disk_needs_no_flush() -> None:
    intent = clean_intent(8)
    intent.start_write(range(3))
    intent.flush_done(intent.flush_before_write(), ok=True)
    intent.end_write(range(3), success=True)
    assert intent.try_start_write(range(1, 3)) == ON_DISK
    assert intent.counters[1] == 3


def test_end_write_without_start_is_a_bug() -> None:
    intent = clean_intent(8)
    with pytest.raises(ValueError, match="no write in flight"):
        intent.end_write(range(1), success=True)


@given(
    st.lists(
        st.tuples(st.sampled_from(["write", "sweep"]), st.integers(0, 63), st.integers(1, 4)),
        max_size=60,
    )
)
@settings(max_examples=200)
def test_invariant_bit_set_while_write_in_flight_or_pending(
    ops: list[tuple[str, int, int]],
) -> None:
    """A chunk with a write started and not yet swept twice always has its disk bit set."""
    intent = clean_intent(64)
    inflight: list[range] = []
    for op, chunk, span in ops:
        if op == "write":
            chunks = range(chunk, min(chunk + span, 64))
            intent.start_write(chunks)
            inflight.append(chunks)
            intent.flush_before_write()
            if len(inflight) > 2:
                done = inflight.pop(0)
                intent.end_write(done, success=True)
        else:
            intent.sweep()
        for chunks in inflight:
            for c in chunks:
                assert intent.bitmap.test(c)
                assert intent.counters[c] >= 3
    for chunks in inflight:
        intent.end_write(chunks, success=True)
    for _ in range(2):
        intent.sweep()
    assert intent.bitmap.count_dirty() == 0
