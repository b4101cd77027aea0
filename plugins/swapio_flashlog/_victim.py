"""Choosing the erase block garbage collection cleans next (sans-I/O).

First match wins: a block marked for scrubbing; static wear levelling when erase counts
drift apart; otherwise greedy (fewest live bytes) — or, for comparison, the kernel's
randomised ``jffs2_find_gc_block`` list choice.  Pinned blocks (holding a damaged live
node) are never chosen: erasing them would let an older version resurface.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from swapio_flashlog._blocks import CHUNK_COST, Block, BlockState, LogOptions


def pick_victim(
    blocks: Sequence[Block],
    counts: Sequence[int],
    eb: int,
    options: LogOptions,
    rng: random.Random,
    *,
    wear_levelling: bool = True,
    queue: VictimQueue | None = None,
    bad: Sequence[int] = (),
    stats: tuple[int, int, int] | None = None,
) -> Block | None:
    """The block to collect next, or None when no block has anything to reclaim.

    With a :class:`VictimQueue` (kept up to date by the log) and the indices of the
    ``bad`` blocks, the same choice is made without a pass over every block.

    ``counts`` are the per-block erase counts.  Wear levelling moves the least-erased
    block holding data when the most-erased good block is more than
    ``max(options.wl_min_delta, mean / 10)`` erases ahead of it.
    """
    if options.policy == "jffs2":
        return _jffs2_policy(blocks, counts, eb, options, rng, wear_levelling)
    if queue is not None:
        return _greedy_from_queue(blocks, counts, eb, options, queue, wear_levelling, bad, stats)
    # One pass (this runs once per GC step): the greedy choice is the full block with the
    # fewest live bytes, since a block's gain only shrinks as its live bytes grow.
    bad_state, full_state = BlockState.BAD, BlockState.FULL
    total = good = hottest = 0
    coldest: Block | None = None
    cold_key = (0, 0)
    greedy: Block | None = None
    greedy_key = (0, 0)
    for b in blocks:
        state = b.state
        if state is bad_state:
            continue
        count = counts[b.index]
        total += count
        good += 1
        hottest = max(hottest, count)
        if state is not full_state or b.pinned:
            continue
        if b.scrub:
            return b
        live = b.live
        if coldest is None or (count, live) < cold_key:
            coldest, cold_key = b, (count, live)
        if greedy is None or (live, count) < greedy_key:
            greedy, greedy_key = b, (live, count)
    if coldest is None or greedy is None:
        return None
    delta = max(options.wl_min_delta, int(total / good * 0.1))
    if wear_levelling and hottest - cold_key[0] > delta:
        return coldest  # static wear levelling: move cold data off a little-worn block
    return greedy if greedy.gain(eb) >= CHUNK_COST else None


class VictimQueue:
    """Full blocks ordered by (live bytes, erase count): the greedy choice at heap cost.

    A full block's live bytes only shrink (its nodes become obsolete) and its erase count
    does not change until it is erased; a block whose live bytes changed is remembered
    (:meth:`note`) and gets one fresh entry when the next choice is made, however many of
    its nodes became obsolete meanwhile; an entry that no longer matches its block is
    dropped when it reaches the top.  Blocks marked for scrubbing at mount are remembered
    apart (only a mount marks them).
    """

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks = blocks
        self._heap: list[tuple[int, int, int]] = []
        self._scrub: list[Block] = []
        self._changed: set[Block] = set()

    def rebuild(self, counts: Sequence[int]) -> None:
        full = BlockState.FULL
        self._heap = [(b.live, counts[b.index], b.index) for b in self.blocks if b.state is full]
        heapq.heapify(self._heap)
        self._scrub = [b for b in self.blocks if b.scrub]
        self._changed.clear()

    def note(self, blk: Block) -> None:
        """``blk`` became full or lost live bytes."""
        self._changed.add(blk)

    def scrubbing(self) -> Block | None:
        """The first full, unpinned block still marked for scrubbing."""
        self._scrub = [b for b in self._scrub if b.scrub]
        for b in self._scrub:
            if b.state is BlockState.FULL and not b.pinned:
                return b
        return None

    def fewest_live(self, counts: Sequence[int]) -> Block | None:
        """The unpinned full block with the fewest live bytes (then fewest erases)."""
        heap = self._heap
        full = BlockState.FULL
        if len(heap) + len(self._changed) > 4 * len(self.blocks) + 1024:
            self.rebuild(counts)
            heap = self._heap
        elif self._changed:
            push = heapq.heappush
            for b in self._changed:
                if b.state is full:
                    push(heap, (b.live, counts[b.index], b.index))
            self._changed.clear()
        while heap:
            live, count, index = heap[0]
            b = self.blocks[index]
            if b.state is full and b.live == live and counts[index] == count and not b.pinned:
                return b
            heapq.heappop(heap)  # stale (a pinned block comes back when it loses live bytes)
        return None


def _greedy_from_queue(
    blocks: Sequence[Block],
    counts: Sequence[int],
    eb: int,
    options: LogOptions,
    queue: VictimQueue,
    wear_levelling: bool,
    bad: Sequence[int],
    stats: tuple[int, int, int] | None = None,
) -> Block | None:
    """:func:`pick_victim`'s greedy policy, its one pass replaced by the queue (and the
    erase counts' min, max and sum by ``stats`` when given)."""
    scrub = queue.scrubbing()
    if scrub is not None:
        return scrub
    if wear_levelling:
        good: Sequence[int] = counts
        if bad:
            skip = set(bad)
            good = [c for i, c in enumerate(counts) if i not in skip]
            low, hottest, total = min(good, default=0), max(good, default=0), sum(good)
        elif stats is not None:
            low, hottest, total = stats
        else:
            low, hottest, total = min(good, default=0), max(good, default=0), sum(good)
        if good:
            delta = max(options.wl_min_delta, int(total / len(good) * 0.1))
            if hottest - low > delta:  # some block is cold enough: is a full one?
                # only blocks more than delta below the hottest qualify (few, usually)
                limit = hottest - delta
                full = BlockState.FULL
                cold = [
                    blocks[i]
                    for i, c in enumerate(counts)
                    if c < limit and blocks[i].state is full and not blocks[i].pinned
                ]
                if cold:
                    return min(cold, key=lambda b: (counts[b.index], b.live))
    greedy = queue.fewest_live(counts)
    return greedy if greedy is not None and greedy.gain(eb) >= CHUNK_COST else None


def _jffs2_policy(
    blocks: Sequence[Block],
    counts: Sequence[int],
    eb: int,
    options: LogOptions,
    rng: random.Random,
    wear_levelling: bool,
) -> Block | None:
    """Scrub, wear levelling, then :func:`jffs2_victim` (the comparison policy)."""
    full = [b for b in blocks if b.state is BlockState.FULL and not b.pinned]
    if not full:
        return None
    for b in full:
        if b.scrub:
            return b
    good = [counts[b.index] for b in blocks if b.state is not BlockState.BAD]
    mean = sum(good) / len(good)
    coldest = min(full, key=lambda b: (counts[b.index], b.live))
    delta = max(options.wl_min_delta, int(mean * 0.1))
    if wear_levelling and max(good) - counts[coldest.index] > delta:
        return coldest
    dirty = [b for b in full if b.gain(eb) >= CHUNK_COST]
    if not dirty:
        return None
    return jffs2_victim(full, dirty, eb, rng)


def jffs2_victim(
    full: Sequence[Block], dirty: Sequence[Block], eb: int, rng: random.Random
) -> Block:
    """``jffs2_find_gc_block``: ``n = jiffies % 128`` picks very dirty (n < 110), dirty
    (n < 126) or clean blocks, falling back to the other lists when one is empty."""
    very = [b for b in dirty if b.gain(eb) >= eb // 2]
    some = [b for b in dirty if b.gain(eb) < eb // 2]
    clean = [b for b in full if b.gain(eb) < CHUNK_COST]
    n = rng.randrange(128)
    if n < 110:
        order = [very, some, clean]
    elif n < 126:
        order = [some, very, clean]
    else:
        order = [clean, some, very]
    for choice in order:
        if choice:
            return rng.choice(choice)
    return dirty[0]
