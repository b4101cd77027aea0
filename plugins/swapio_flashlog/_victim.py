"""Choosing the erase block garbage collection cleans next (sans-I/O).

First match wins: a block marked for scrubbing; static wear levelling when erase counts
drift apart; otherwise greedy (fewest live bytes) — or, for comparison, the kernel's
randomised ``jffs2_find_gc_block`` list choice.  Pinned blocks (holding a damaged live
node) are never chosen: erasing them would let an older version resurface.
"""

from __future__ import annotations

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
) -> Block | None:
    """The block to collect next, or None when no block has anything to reclaim.

    ``counts`` are the per-block erase counts.  Wear levelling moves the least-erased
    block holding data when the most-erased good block is more than
    ``max(options.wl_min_delta, mean / 10)`` erases ahead of it.
    """
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
        return coldest  # static wear levelling: move cold data off a little-worn block
    dirty = [b for b in full if b.gain(eb) >= CHUNK_COST]
    if not dirty:
        return None
    if options.policy == "jffs2":
        return jffs2_victim(full, dirty, eb, rng)
    return min(dirty, key=lambda b: (b.live, counts[b.index]))


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
