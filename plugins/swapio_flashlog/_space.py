"""Erase-block space: which blocks are free, the two write heads, allocation and erase.

The kernel keeps ``free_list``, ``nextblock`` and ``gcblock`` in ``struct jffs2_sb_info``
(``fs/jffs2/nodemgmt.c``: ``jffs2_reserve_space``, ``jffs2_find_nextblock``,
``jffs2_close_nextblock``).  Here the free set is kept up to date as blocks change state,
so choosing the next block costs one pass over the free blocks, not over the whole chip.

* A user write may not take the last ``reserve_blocks`` free blocks; it runs a foreground
  garbage-collection step instead (the ``reclaim`` callback).  GC may take them, and
  moving one victim needs at most one fresh block, so GC can always make progress.
* A head is closed with its erase-block summary (``jffs2_sum_write_sumnode``) when the
  next node and the summary would not both fit; the summary's entries were appended one
  per node as the nodes were programmed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Literal

from swapio_flashlog._blocks import Block, BlockState, LogOptions, align
from swapio_flashlog._index import NodeRef
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    encode_cleanmarker,
    encode_summary_entries,
    summary_span,
)
from swapio_flashlog._victim import VictimQueue
from swapio_flashlog.device import FlashDevice
from swapio_flashlog.errors import BadBlockError, LogFullError

Head = Literal["user", "gc"]
_FREE_STATES = (BlockState.FREE, BlockState.ERASE)


class Space:
    """The blocks of one log: free set, write heads, allocation, erase, summaries."""

    def __init__(self, device: FlashDevice, options: LogOptions, cleanmarkers: bool) -> None:
        g = device.geometry
        self.device = device
        self.options = options
        self.cleanmarkers = cleanmarkers
        self.eb = g.erase_block
        self.align = max(4, g.write_unit)
        self.blocks = [Block(i, i * g.erase_block) for i in range(g.blocks)]
        self.heads: dict[str, Block] = {}
        self.free: set[Block] = set()
        # (erase count, index) of free blocks, least worn first / most worn first; entries
        # of blocks taken or erased since are stale and skipped when they come up
        self._least: list[tuple[int, int]] = []
        self._most: list[tuple[int, int]] = []
        #: Full blocks by live bytes, for the garbage collector's greedy choice.
        self.victims = VictimQueue(self.blocks)
        #: Runs one garbage-collection step for a user write short of space; False when
        #: nothing can be collected.  Set by the log.
        self.reclaim: Callable[[bool], bool] = lambda _wear_levelling: False

    def recount(self) -> None:
        """Rebuild the free set from the block states (after a mount)."""
        self.free = set()
        self._least, self._most = [], []
        for b in self.blocks:
            if b.state in _FREE_STATES:
                self._add_free(b)
        self.victims.rebuild(self.device.erase_counts())

    def _add_free(self, blk: Block) -> None:
        self.free.add(blk)
        count = self.device.erase_count(blk.index)
        heapq.heappush(self._least, (count, blk.index))
        heapq.heappush(self._most, (-count, -blk.index))
        if len(self._least) > 4 * len(self.blocks):  # too many stale entries: rebuild
            self.recount()

    def _pick_free(self, *, most_worn: bool) -> Block:
        """The free block with the fewest (or most) erases, ties to the lower (higher) index."""
        heap = self._most if most_worn else self._least
        sign = -1 if most_worn else 1
        while True:
            count, index = heap[0]
            blk = self.blocks[sign * index]
            if blk in self.free and self.device.erase_count(blk.index) == sign * count:
                return blk
            heapq.heappop(heap)

    def free_blocks(self) -> list[Block]:
        return sorted(self.free, key=lambda b: b.index)

    # --- the write heads -------------------------------------------------------------

    def fits(self, blk: Block, length: int, entries_size: int) -> bool:
        """Do ``length`` more node bytes with ``entries_size`` more summary-entry bytes fit
        in ``blk`` while its summary still fits behind them?"""
        tail = 0
        if self.options.summaries and blk.sum_ok:
            tail = summary_span(blk.sum_size + entries_size)
        return blk.pos + length + tail <= self.eb

    def head(self, head: Head, length: int, entry_size: int) -> Block:
        """The write head for ``head`` with room for a node of ``length`` bytes."""
        blk = self.heads.get(head)
        if blk is not None and self.fits(blk, length, entry_size):
            return blk
        if blk is not None:
            del self.heads[head]
            self.close_block(blk)
        blk = self.allocate(gc=head == "gc")
        self.heads[head] = blk
        return blk

    def placed(
        self, blk: Block, refs: list[NodeRef], nbytes: int, entries: bytes, summarised: bool
    ) -> None:
        """Account for ``refs`` (``nbytes`` of flash) just programmed at the block's write
        position; ``entries`` are their summary entries, ``summarised`` False when one of
        them has none (the block then gets no summary, as ``jffs2_sum_add_kvec`` gives up)."""
        blk.pos += nbytes
        blk.nodes.extend(refs)
        blk.used += nbytes
        blk.live += nbytes
        blk.sum_size += len(entries)
        blk.sum_entries += entries
        if not summarised:
            blk.sum_ok = False

    def summary_after(self, blk: Block, entries: bytes, count: int, pos: int) -> bytes | None:
        """The summary node that closes ``blk`` once ``count`` more nodes with summary
        ``entries`` end at block offset ``pos`` (``jffs2_sum_write_sumnode``); None when the
        block gets no summary (summaries off, a node it cannot describe, or no room)."""
        size = blk.sum_size + len(entries)
        if not (self.options.summaries and blk.sum_ok and (blk.nodes or count)):
            return None
        if self.eb - pos < summary_span(size):
            return None
        return encode_summary_entries(
            blk.sum_entries + entries if entries else blk.sum_entries,
            len(blk.nodes) + count,
            self.eb - pos,
            pos,
            CLEANMARKER_SIZE if self.cleanmarkers else 0,
        )

    def close_block(self, blk: Block) -> None:
        """Write the block's summary if it has one and it fits; the block is FULL."""
        raw = self.summary_after(blk, b"", 0, blk.pos)
        if raw is not None:
            self.device.program(blk.start + blk.pos, raw)
        self.closed(blk, raw is not None)

    def closed(self, blk: Block, summarized: bool) -> None:
        """``blk`` is full (its summary, if ``summarized``, was programmed); a write head
        that it was is no longer one."""
        for name, open_block in list(self.heads.items()):
            if open_block is blk:
                del self.heads[name]
        if summarized:
            blk.summarized = True
        blk.state = BlockState.FULL
        blk.pos = self.eb
        blk.sum_entries = bytearray()
        self.victims.note(blk)

    # --- allocation and erase -----------------------------------------------------------

    def allocate(self, *, gc: bool) -> Block:
        """A fresh block to be a write head: the least-worn free block for user data, the
        most-worn for GC (cold data moved by GC rests on it)."""
        stepped = False  # wear levelling at most once per allocation: it frees no space
        budget = 2 * len(self.blocks)  # GC steps before we call the log full
        while True:
            free = self.free
            if gc:
                if not free:
                    raise LogFullError(
                        f"{self.device.path}: no free erase block left even for garbage "
                        "collection (the reserve is exhausted)"
                    )
            elif len(free) <= self.options.reserve_blocks:
                budget -= 1
                if budget < 0 or not self.reclaim(not stepped):
                    raise LogFullError(
                        f"{self.device.path}: the log is full: no erase block holds obsolete "
                        "data to collect"
                    )
                stepped = True
                continue
            pick = self._pick_free(most_worn=gc)
            if pick.state is BlockState.FREE and not pick.blank and not self._blank_after(pick):
                pick.state = BlockState.ERASE  # a bit flipped in erased flash: erase again
            if pick.state is BlockState.ERASE and not self.erase(pick):
                continue
            pick.state = BlockState.OPEN
            self.free.discard(pick)
            return pick

    def _blank_after(self, blk: Block) -> bool:
        """Is everything after the block's write position still erased?  (A free block was
        judged by its first 1 KiB at mount; check the rest before programming into it.)"""
        rest = self.device.read(blk.start + blk.pos, self.eb - blk.pos)
        return rest.count(0xFF) == len(rest)

    def erase(self, blk: Block) -> bool:
        """Erase a block and write its cleanmarker; False if the block went bad."""
        marker = b""
        if self.cleanmarkers:
            pad = align(CLEANMARKER_SIZE, self.align) - CLEANMARKER_SIZE
            marker = encode_cleanmarker() + b"\xff" * pad
        try:
            self.device.erase(blk.index, marker)  # then its cleanmarker, in one write
        except BadBlockError:
            blk.state = BlockState.BAD
            self.free.discard(blk)
            return False
        blk.nodes = []
        blk.live = blk.used = blk.sum_size = blk.pinned = 0
        blk.sum_entries = bytearray()
        blk.summarized = blk.scrub = False
        blk.sum_ok = True
        blk.pos = 0
        blk.state = BlockState.ERASE
        self._add_free(blk)
        if marker:
            blk.pos = len(marker)
        blk.state = BlockState.FREE
        blk.blank = True
        return True
