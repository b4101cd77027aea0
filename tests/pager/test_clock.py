"""CLOCK replacement (sans-I/O)."""

from __future__ import annotations

import pytest

from swapio.pager.clock import Clock


class Entry:
    def __init__(self, name: str, referenced: bool = False, busy: bool = False) -> None:
        self.name = name
        self.referenced = referenced
        self.busy = busy
        self.clock_pos = -1


def free(e: Entry) -> bool:
    return not e.busy


def test_unreferenced_entries_are_chosen_in_hand_order() -> None:
    clock: Clock[Entry] = Clock(4)
    entries = [Entry(n) for n in "abcd"]
    for e in entries:
        clock.insert(e)
    assert [e.name for e in clock.select(2, free)] == ["a", "b"]
    assert [e.name for e in clock.select(1, free)] == ["c"]


def test_referenced_entries_get_a_second_chance() -> None:
    clock: Clock[Entry] = Clock(3)
    a, b, c = Entry("a", referenced=True), Entry("b"), Entry("c", referenced=True)
    for e in (a, b, c):
        clock.insert(e)
    assert clock.select(1, free) == [b]
    assert a.referenced is False  # the hand passed it and cleared its bit
    assert c.referenced is True  # not reached yet


def test_all_referenced_still_yields_victims_after_one_turn() -> None:
    clock: Clock[Entry] = Clock(3)
    entries = [Entry(n, referenced=True) for n in "abc"]
    for e in entries:
        clock.insert(e)
    assert [e.name for e in clock.select(1, free)] == ["a"]


def test_busy_entries_are_skipped_without_losing_their_bit() -> None:
    clock: Clock[Entry] = Clock(2)
    a, b = Entry("a", referenced=True, busy=True), Entry("b")
    clock.insert(a)
    clock.insert(b)
    assert clock.select(2, free) == [b]
    assert a.referenced is True


def test_removed_slots_are_reused_and_full_is_reported() -> None:
    clock: Clock[Entry] = Clock(2)
    a, b, c = Entry("a"), Entry("b"), Entry("c")
    clock.insert(a)
    clock.insert(b)
    assert clock.full
    with pytest.raises(IndexError):
        clock.insert(c)
    clock.remove(a)
    clock.insert(c)
    assert len(clock) == 2
    assert {e.name for e in clock.entries()} == {"b", "c"}
    with pytest.raises(ValueError, match="not in the clock"):
        clock.remove(a)
