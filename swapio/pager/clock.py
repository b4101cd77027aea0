"""CLOCK page replacement (second chance), sans-I/O.

Resident pages sit in a fixed ring of frame slots; the hand sweeps the ring and gives every
referenced page a second chance (clears its bit) before choosing it — the approximation of
LRU that Linux's original ``shrink_list`` and most textbooks use.  Pages that cannot be
evicted right now (I/O in flight) are skipped without losing their bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class ClockEntry(Protocol):
    """What the clock needs from a page."""

    referenced: bool
    clock_pos: int


E = TypeVar("E", bound=ClockEntry)


class Clock(Generic[E]):
    """A ring of ``capacity`` frame slots with a sweeping hand."""

    __slots__ = ("_hand", "_slots", "capacity", "vacant")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"clock capacity must be > 0, got {capacity}")
        self.capacity = capacity
        self._slots: list[E | None] = [None] * capacity
        #: the free slot positions (read-only for callers: ``len(clock.vacant)`` is the
        #: number of free slots without a method call)
        self.vacant = list(range(capacity - 1, -1, -1))
        self._hand = 0

    def __len__(self) -> int:
        return self.capacity - len(self.vacant)

    @property
    def full(self) -> bool:
        """True when every frame slot holds a page."""
        return not self.vacant

    def insert(self, entry: E) -> None:
        """Put ``entry`` in a free slot (raises IndexError when full)."""
        if not self.vacant:
            raise IndexError("clock is full")
        pos = self.vacant.pop()
        self._slots[pos] = entry
        entry.clock_pos = pos

    def remove(self, entry: E) -> None:
        """Take ``entry`` out of its slot."""
        pos = entry.clock_pos
        if pos < 0 or self._slots[pos] is not entry:
            raise ValueError("entry is not in the clock")
        self._slots[pos] = None
        self.vacant.append(pos)
        entry.clock_pos = -1

    def select(self, n: int, evictable: Callable[[E], bool]) -> list[E]:
        """Up to ``n`` victims: unreferenced evictable entries, clearing bits on the way.

        The hand moves at most two full turns, so a ring of referenced pages still yields
        victims (after their bits were cleared on the first turn).
        """
        victims: list[E] = []
        slots = self._slots
        cap = self.capacity
        hand = self._hand
        for _ in range(2 * cap):
            if len(victims) >= n:
                break
            entry = slots[hand]
            hand = hand + 1 if hand + 1 < cap else 0
            if entry is None or not evictable(entry):
                continue
            if entry.referenced:
                entry.referenced = False
                continue
            if entry in victims:
                continue
            victims.append(entry)
        self._hand = hand
        return victims

    def entries(self) -> list[E]:
        """Resident entries in slot order."""
        return [e for e in self._slots if e is not None]
