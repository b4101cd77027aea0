"""Bits set ahead of a sequential write stream (swapio's addition to md's protocol).

A stream of one request at a time would otherwise wait for a bitmap flush each time it
enters a clean chunk.  When a write starts where the previous one ended, the bits of the
next :data:`AHEAD_BYTES` worth of chunks are set too (``WriteIntent.set_ahead``: the state
of a completed write, lazily cleared by two sweeps) and flushed in the background; the
window moves on when the stream is half-way through it.  After a crash a resync copies at
most this much more per stream.
"""

from __future__ import annotations

#: How far ahead of a sequential stream bits are set.
AHEAD_BYTES = 4 << 20


class AheadWindow:
    """Where the last write ended and how far ahead bits are set (sans-I/O)."""

    def __init__(self, chunk_size: int, chunks: int) -> None:
        #: chunks set ahead at a time
        self.ahead_chunks = max(1, AHEAD_BYTES // chunk_size)
        self._chunks = chunks
        self._next_slot = -1  # where the last write ended
        self._end = 0  # bits set ahead up to this chunk

    def advance(self, slot: int, count: int, stop: int) -> range | None:
        """A write of ``count`` slots from ``slot`` covering chunks below ``stop`` starts:
        the chunks whose bits to set ahead now, or None (not sequential, or the window
        still reaches far enough)."""
        sequential = slot == self._next_slot
        self._next_slot = slot + count
        if not sequential:
            self._end = stop
            return None
        if stop < self._end - self.ahead_chunks // 2:
            return None
        end = min(stop + self.ahead_chunks, self._chunks)
        start = max(stop, self._end)
        self._end = end
        return range(start, end)
