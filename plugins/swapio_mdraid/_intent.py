"""md's write-intent protocol as a sans-I/O state machine over a :class:`Bitmap`.

Implements the in-memory side of ``drivers/md/md-bitmap.c``: one 16-bit
``bitmap_counter_t`` per chunk (bit 15 ``NEEDED``, bit 14 ``RESYNC``, low 14 bits the count
of pending writes plus the on-disk bit), ``md_bitmap_startwrite`` / ``md_bitmap_endwrite``,
the daemon's two-sweep lazy clear (``md_bitmap_daemon_work``) and the sync hooks
(``md_bitmap_start_sync`` / ``md_bitmap_end_sync``).  It never does I/O: it says which
bitmap *pages* (``page_size`` slices of the superblock-plus-bits image) must be written,
and the shell writes them — dirty pages *before* the data write, cleared pages lazily.
"""

from __future__ import annotations

import enum
from array import array

from swapio_mdraid._format import (
    COUNTER_MAX,
    SUPERBLOCK_SIZE,
    Bitmap,
    BitmapState,
)

NEEDED_MASK = 0x8000
RESYNC_MASK = 0x4000
COUNTER_MASK = COUNTER_MAX


class PageAttr(enum.IntFlag):
    """``enum bitmap_page_attr``."""

    DIRTY = 1  # bits were set: must reach disk before the data write
    PENDING = 2  # some counter on the page is at 1 or 2: the daemon looks at it
    NEEDWRITE = 4  # bits were cleared: write lazily


DIRTY = int(PageAttr.DIRTY)
PENDING = int(PageAttr.PENDING)
NEEDWRITE = int(PageAttr.NEEDWRITE)

#: Where a write's bits are (:meth:`WriteIntent.start_write`): on disk already, in a page
#: no flush has taken yet (wait for the next flush), in the flush being written (wait for it).
ON_DISK = 0
UNFLUSHED = 1
IN_FLIGHT = 2
#: :meth:`WriteIntent.start_write` counted nothing: a chunk is at ``COUNTER_MAX`` (md sleeps
#: on ``overflow_wait``; the caller waits for an ``end_write`` and asks again).
OVERFLOW = -1


class CounterOverflow(Exception):
    """A chunk already has ``COUNTER_MAX`` writes in flight (md sleeps on overflow_wait)."""


class WriteIntent:
    """Counters and page attributes for one bitmap (``struct bitmap_counts`` + ``storage``).

    ``degraded`` mirrors ``mddev->degraded``: while set, completed writes keep their chunk's
    bit (``NEEDED``) so a re-added leg can be resynced from the bitmap.
    """

    def __init__(self, bitmap: Bitmap, page_size: int) -> None:
        if page_size < SUPERBLOCK_SIZE or page_size & (page_size - 1):
            raise ValueError(f"bitmap page size {page_size} is not a power of two >= 256")
        self.bitmap = bitmap
        self.page_size = page_size
        self.degraded = False
        self.need_sync = False
        self.counters = array("H", bytes(2 * bitmap.chunks))
        self._attrs: dict[int, int] = {}  # page -> PageAttr bits (plain ints: hot path)
        self._dirty: set[int] = set()  # pages with DIRTY: set bits not yet taken by a flush
        self._dirty_chunks: set[int] = set()  # their chunks
        #: Chunks whose bits the flush being written carries (between flush_before_write
        #: and flush_done).
        self.in_flight: set[int] = set()
        self._sb_dirty = False
        #: ``events_cleared < events``: the next successful write on a healthy array moves
        #: ``events_cleared`` up (one flag test per write instead of two superblock reads)
        self._cleared_behind = bitmap.superblock.events_cleared < bitmap.superblock.events
        if bitmap.superblock.state & BitmapState.STALE:
            # md_bitmap_init_from_disk: an out-of-date bitmap means a full resync.
            for chunk in range(bitmap.chunks):
                if bitmap.set(chunk):
                    self._mark(chunk, DIRTY)
            bitmap.update(state=bitmap.superblock.state & ~BitmapState.STALE)
            self._sb_dirty = True
        for chunk in bitmap.dirty_chunks():
            # md_bitmap_set_memory_bits: a set bit means "needs resync", counted as 2.
            self.counters[chunk] = 2 | NEEDED_MASK

    # --- geometry -------------------------------------------------------------------

    def page_of(self, chunk: int) -> int:
        """Which page of the image holds chunk ``chunk``'s bit (``file_page_index``)."""
        return self.bitmap.chunk_byte_offset(chunk) // self.page_size

    def _mark(self, chunk: int, attr: int) -> None:
        # page_of without its range check: chunk comes from a counter index (hot path)
        page = (SUPERBLOCK_SIZE + (chunk >> 3)) // self.page_size
        self._attrs[page] = self._attrs.get(page, 0) | attr
        if attr & DIRTY:
            self._dirty.add(page)
            self._dirty_chunks.add(chunk)

    # --- superblock -----------------------------------------------------------------

    def bump_events(self) -> int:
        """The array changed state (activation, a leg failed or came back): ``events += 1``."""
        sb = self.bitmap.superblock
        self.bitmap.update(events=sb.events + 1)
        self._sb_dirty = True
        self._cleared_behind = True
        return sb.events + 1

    # --- writes ---------------------------------------------------------------------

    def can_start(self, chunks: range) -> bool:
        """False if some chunk is at ``COUNTER_MAX`` (the caller must wait for an end_write)."""
        counters = self.counters
        for chunk in chunks:  # noqa: SIM110 - a loop: no generator frame on the hot path
            if counters[chunk] & COUNTER_MASK >= COUNTER_MAX:
                return False
        return True

    def start_write(self, chunks: range, *, checked: bool = False) -> int:
        """``md_bitmap_startwrite``: count the write, set the on-disk bit of clean chunks.

        Returns where the chunks' bits are, as :meth:`unflushed` would say it in one word:
        :data:`ON_DISK` (0: nothing to wait for), :data:`UNFLUSHED` (a page holding them has
        bits no flush has taken yet: wait for the next flush) or :data:`IN_FLIGHT` (a page
        holding them is in the flush being written: wait for that one).  ``checked``: the
        caller has just seen :meth:`can_start` say yes (nothing ran in between); without it
        a chunk at ``COUNTER_MAX`` raises :class:`CounterOverflow`.
        """
        if not checked and not self.can_start(chunks):
            raise CounterOverflow(f"chunks {chunks.start}..{chunks.stop - 1}: counter at max")
        return self._count(chunks)

    def try_start_write(self, chunks: range) -> int:
        """:meth:`start_write` in one pass over ``chunks``: :data:`OVERFLOW` (nothing left
        counted) when a chunk is at ``COUNTER_MAX`` — the caller waits until
        :meth:`can_start`.  The common chunk (bit on disk, count 2 or more) is one add."""
        counters = self.counters
        for chunk in chunks:
            counter = counters[chunk]
            count = counter & COUNTER_MASK
            if 2 <= count < COUNTER_MAX:
                counters[chunk] = counter + 1
                continue
            if count >= COUNTER_MAX:
                self._uncount(range(chunks.start, chunk))
                return OVERFLOW
            return self._count(range(chunk, chunks.stop), chunks)
        if not (self._dirty_chunks or self.in_flight):
            return ON_DISK
        dirty, flying = self.unflushed(chunks)
        return UNFLUSHED if dirty else IN_FLIGHT if flying else ON_DISK

    def _uncount(self, chunks: range) -> None:
        """Take back :meth:`try_start_write`'s count of ``chunks`` (all were at 2 or more:
        their bits stay as they were)."""
        for chunk in chunks:
            self.counters[chunk] -= 1

    def _count(self, chunks: range, whole: range | None = None) -> int:
        """Count ``chunks`` (the rest of the write ``whole``, checked by the caller or by
        :meth:`start_write`); where the bits of ``whole`` are."""
        counters = self.counters
        where = ON_DISK
        if whole is not None:  # try_start_write: chunks not yet checked for the maximum
            for chunk in chunks:
                if counters[chunk] & COUNTER_MASK >= COUNTER_MAX:
                    self._uncount(range(whole.start, chunks.start))
                    return OVERFLOW
        else:
            whole = chunks
        for chunk in chunks:
            counter = counters[chunk]
            count = counter & COUNTER_MASK
            if count == 0:
                if self.bitmap.set(chunk):
                    self._mark(chunk, DIRTY)
                    where = UNFLUSHED
                count = 2
            elif count == 1:
                count = 2
            counters[chunk] = (counter & ~COUNTER_MASK) | (count + 1)
        if where or not (self._dirty_chunks or self.in_flight):
            return where
        dirty, flying = self.unflushed(whole)
        return UNFLUSHED if dirty else IN_FLIGHT if flying else ON_DISK

    def writing(self, chunk: int) -> bool:
        """Has the chunk a write in flight (between :meth:`start_write` and
        :meth:`end_write`)?  Its count is then above 2: the on-disk bit's 2 plus one per
        write (:meth:`set_ahead`, loading and sweeps only ever leave 0, 1 or 2)."""
        return self.counters[chunk] & COUNTER_MASK > 2

    def set_ahead(self, chunks: range) -> None:
        """Set the bits of chunks a sequential stream is about to write, with no write counted.

        Not in md (swapio's addition for one-request-at-a-time streams): the bits reach disk
        in a flush *before* the stream gets there, so its writes need not wait for one.  A
        chunk gets the state of a completed write (count 2, lazily cleared by two sweeps if
        no write comes), so a bit set ahead is only ever *more* than the invariant needs.
        """
        for chunk in chunks:
            counter = self.counters[chunk]
            if counter & COUNTER_MASK >= 2:
                continue
            if self.bitmap.set(chunk):
                self._mark(chunk, DIRTY)
            self.counters[chunk] = (counter & ~COUNTER_MASK) | 2
            self._mark(chunk, PENDING)

    def unflushed(self, chunks: range) -> tuple[bool, bool]:
        """Where the bits of ``chunks`` are: ``(not yet taken by a flush, in the flush being
        written)``; ``(False, False)`` means on disk."""
        dirty = self._dirty_chunks
        if dirty and any(c in dirty for c in chunks):
            return True, False
        flying = self.in_flight
        return False, bool(flying) and any(c in flying for c in chunks)

    def end_write(self, chunks: range, success: bool) -> None:
        """``md_bitmap_endwrite``: uncount; a failed or degraded write keeps the bit (NEEDED)."""
        if success and self._cleared_behind and not self.degraded:
            self._cleared_behind = False
            self.bitmap.update(events_cleared=self.bitmap.superblock.events)
            self.need_sync = True
        counters = self.counters
        attrs = self._attrs
        for chunk in chunks:
            counter = counters[chunk]
            if counter & COUNTER_MASK == 0:
                raise ValueError(f"end_write on chunk {chunk} with no write in flight")
            if not success and not counter & NEEDED_MASK:
                counter |= NEEDED_MASK
            counter -= 1
            counters[chunk] = counter
            if counter & COUNTER_MASK <= 2:
                # _mark(chunk, PENDING), inline: the last write on a chunk ends here
                page = (SUPERBLOCK_SIZE + (chunk >> 3)) // self.page_size
                attr = attrs.get(page, 0)
                if not attr & PENDING:
                    attrs[page] = attr | PENDING

    @property
    def has_dirty(self) -> bool:
        """Some bit was set in memory and no flush has taken its page yet."""
        return bool(self._dirty)

    def flush_before_write(self) -> list[int]:
        """Pages to write *now*, before the data (``md_bitmap_unplug``); superblock first.

        Every page whose bits were set since the last call, whatever write set them: the
        shell calls this once per batch of writes (plugging), not once per write.
        """
        pages = sorted(self._dirty)
        self._dirty.clear()
        self.in_flight = self._dirty_chunks
        self._dirty_chunks = set()
        for page in pages:
            self._attrs[page] &= ~DIRTY
            if not self._attrs[page]:
                del self._attrs[page]
        if self._sb_dirty:
            self._sb_dirty = False
            if 0 not in pages:
                pages.insert(0, 0)
        return pages

    def flush_done(self, pages: list[int], ok: bool) -> None:
        """The flush of ``pages`` (from :meth:`flush_before_write`) completed, or failed."""
        if not ok:
            self.redirty(pages)
        self.in_flight = set()

    def redirty(self, pages: list[int]) -> None:
        """Writing ``pages`` failed: they must be flushed again before the next data write."""
        for page in pages:
            if page == 0:
                self._sb_dirty = True
            self._attrs[page] = self._attrs.get(page, 0) | DIRTY
            self._dirty.add(page)
        self._dirty_chunks |= self.in_flight

    # --- the daemon -----------------------------------------------------------------

    def sweep(self) -> list[int]:
        """One ``md_bitmap_daemon_work`` pass: 2 → 1 stays pending, 1 → 0 clears the bit.

        Returns the pages to write (page 0 first when ``events_cleared`` changed, since the
        superblock must reach disk before the cleared bits).  A chunk's bit is therefore
        cleared only after two sweeps without a write in between.  ``DIRTY`` pages are left
        to the next flush (writers wait for *that* flush; the page this sweep writes may
        carry their bits too, which is harmless).
        """
        out: set[int] = set()
        if self.need_sync:
            self.need_sync = False
            self._sb_dirty = True
        if self._sb_dirty:
            self._sb_dirty = False
            out.add(0)
        for page, old in list(self._attrs.items()):
            attr = old
            if attr & NEEDWRITE:
                out.add(page)
                attr &= ~NEEDWRITE
            if attr & PENDING:
                attr = self._sweep_page(page, attr & ~PENDING)
                if attr & NEEDWRITE:
                    out.add(page)
                    attr &= ~NEEDWRITE
            if attr:
                self._attrs[page] = attr
            else:
                del self._attrs[page]
        return sorted(out)

    def _chunks_on_page(self, page: int) -> range:
        first_byte = max(page * self.page_size - SUPERBLOCK_SIZE, 0)
        last_byte = (page + 1) * self.page_size - SUPERBLOCK_SIZE
        return range(
            min(first_byte * 8, self.bitmap.chunks), min(last_byte * 8, self.bitmap.chunks)
        )

    def _sweep_page(self, page: int, attr: int) -> int:
        for chunk in self._chunks_on_page(page):
            counter = self.counters[chunk]
            if counter == 1:
                self.counters[chunk] = 0
                if self.bitmap.clear(chunk):
                    attr |= NEEDWRITE
            elif counter and counter <= 2:
                self.counters[chunk] = 1
                attr |= PENDING
        return attr

    @property
    def idle(self) -> bool:
        """No write in flight and nothing left for the daemon to clear."""
        return not any(a & (PENDING | NEEDWRITE) for a in self._attrs.values())

    # --- resync ---------------------------------------------------------------------

    def start_sync(self, chunk: int) -> bool:
        """``md_bitmap_start_sync``: does this chunk need syncing?  NEEDED → RESYNC."""
        counter = self.counters[chunk]
        if counter & RESYNC_MASK:
            return True
        if counter & NEEDED_MASK:
            if not self.degraded:
                self.counters[chunk] = (counter | RESYNC_MASK) & ~NEEDED_MASK
            return True
        return False

    def end_sync(self, chunk: int, aborted: bool) -> None:
        """``md_bitmap_end_sync``: done (lazy clear from now on) or aborted (NEEDED again)."""
        counter = self.counters[chunk]
        if not counter & RESYNC_MASK:
            return
        counter &= ~RESYNC_MASK
        if aborted and not counter & NEEDED_MASK:
            counter |= NEEDED_MASK
        self.counters[chunk] = counter
        if not aborted and counter & COUNTER_MASK <= 2:
            self._mark(chunk, PENDING)

    def needs_sync(self, chunk: int) -> bool:
        """True while the chunk's legs may differ and no resync has completed it."""
        return bool(self.counters[chunk] & (NEEDED_MASK | RESYNC_MASK))
