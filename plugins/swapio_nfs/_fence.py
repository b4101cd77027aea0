"""The byte ranges of a file's in-doubt WRITEs: which of them a new WRITE must wait for.

Sans-I/O bookkeeping for the ordering rule of docs/nfs.md ("In-doubt WRITEs"): a WRITE that was
sent and never answered may still be executed by the server (without a reply a client can
infer nothing about how often a procedure ran, RFC 5531 §5; at-most-once is left to the
server's duplicate request cache, RFC 1813 §4.5), so a later WRITE of an overlapping range is
sent only once the earlier one's XID has been answered.  The Linux client gets the same
order from the page cache: a page under writeback is not written again until its WRITE
completes (``folio_wait_writeback``), and a hard mount's ``rpc_task`` does not complete
without a reply.

The table is small (in-doubt WRITEs only exist while a server misbehaves), so a dictionary
scanned per query is enough; the data path only reads :attr:`DoubtRanges.count`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class DoubtRanges(Generic[T]):
    """Half-open byte ranges ``[start, end)``, each with the caller's token."""

    __slots__ = ("_entries", "_next", "count", "nbytes")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, int, T]] = {}
        self._next = 0
        self.count = 0
        """Ranges held (an attribute, not ``len()``: the data path tests it per WRITE)."""
        self.nbytes = 0
        """Bytes the held ranges cover, overlaps counted twice (what their copies hold)."""

    def add(self, start: int, end: int, token: T) -> int:
        """Hold ``[start, end)``; returns the key that :meth:`remove` takes."""
        if not 0 <= start < end:
            raise ValueError(f"not a byte range: [{start}, {end})")
        self._next += 1
        self._entries[self._next] = (start, end, token)
        self.count += 1
        self.nbytes += end - start
        return self._next

    def remove(self, key: int) -> None:
        """Release the range ``key`` (a key already removed is ignored)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.count -= 1
            self.nbytes -= entry[1] - entry[0]

    def overlapping(self, start: int, end: int) -> list[T]:
        """Tokens of the held ranges that share at least one byte with ``[start, end)``."""
        return [tok for s, e, tok in self._entries.values() if s < end and start < e]

    def __iter__(self) -> Iterator[T]:
        return (tok for _, _, tok in self._entries.values())
