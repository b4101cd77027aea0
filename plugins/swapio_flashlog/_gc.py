"""Garbage collection: move a victim block's live nodes to the GC head, then erase it.

Like ``jffs2_garbage_collect_pass`` with ``jffs2_garbage_collect_pristine``: live nodes are
copied verbatim (same version, so the copy and the original are duplicates and either may
serve), all of a victim's nodes in one batch (:mod:`swapio_flashlog._append`).  A live node
that fails its CRCs stays where it is and pins its block: erasing it would let an older
version of its data resurface.  Victims are chosen by :mod:`swapio_flashlog._victim`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from swapio_flashlog._append import Appender
from swapio_flashlog._blocks import Block, BlockState, LogOptions
from swapio_flashlog._copycheck import intact_prefix
from swapio_flashlog._index import DirentIndex, FileState, RefKind
from swapio_flashlog._space import Space
from swapio_flashlog._victim import pick_victim


class Collector:
    """The garbage collector of one log."""

    def __init__(
        self,
        space: Space,
        appender: Appender,
        files: dict[int, FileState],
        dirents: DirentIndex,
        options: LogOptions,
        build_index: Callable[[], None],
    ) -> None:
        self.space = space
        self.appender = appender
        self.device = space.device
        self.files = files
        self.dirents = dirents
        self.options = options
        self.build_index = build_index
        self.steps = 0
        self.rng = random.Random(options.seed)

    def wanted(self) -> bool:
        """Would a background GC step help?  (Free space is getting low and a dirty block
        exists.)  The scheduler's background class calls :meth:`step` while True."""
        self.build_index()
        space = self.space
        threshold = self.options.reserve_blocks + max(2, len(space.blocks) // 16)
        if len(space.free) >= threshold:
            return False
        eb = space.eb
        return any(
            b.state is BlockState.FULL and b.gain(eb) >= eb // 4 and not b.pinned
            for b in space.blocks
        )

    def step(self, wear_levelling: bool = True) -> bool:
        """Collect one victim block; False if no block holds anything to reclaim."""
        self.build_index()
        victim = self.pick(wear_levelling)
        if victim is None:
            return False
        self.collect(victim)
        return True

    def pick(self, wear_levelling: bool = True) -> Block | None:
        space = self.space
        counts, low, high, total = self.device.wear()
        return pick_victim(
            space.blocks,
            counts,
            space.eb,
            self.options,
            self.rng,
            wear_levelling=wear_levelling,
            queue=space.victims,
            bad=self.device.bad_blocks(),
            stats=(low, high, total),
        )

    def collect(self, victim: Block) -> None:
        """Move the victim's live nodes to the GC head, then erase it."""
        self.build_index()
        live = [ref for ref in victim.nodes if ref.refs > 0]
        if not live:
            self.steps += 1
            self.space.erase(victim)
            return
        # one read of the span holding the live nodes, not one per node
        first = min(ref.offset for ref in live)
        span = memoryview(
            self.device.read(first, max(ref.offset + ref.totlen for ref in live) - first)
        )
        at = [ref.offset - first for ref in live]
        inode = RefKind.INODE
        good = intact_prefix(
            span, at, [ref.totlen for ref in live], [ref.kind is inode for ref in live]
        )
        if good < len(live):  # a damaged node: it (and what follows) stays where it is
            damaged = live[good]
            if not damaged.poisoned:
                damaged.poisoned = True
                victim.pinned += 1
            # the copies' originals stay on flash (GC duplicates), no longer referenced
            stay = {id(ref): ref.moved(ref.offset, ref.length, ref.block) for ref in live[:good]}
            victim.nodes = [stay.get(id(ref), ref) for ref in victim.nodes]
        if good:
            self.appender.copy_nodes("gc", live[:good], span, at[:good])
        if good < len(live):
            victim.scrub = False
            return
        victim.nodes = [ref for ref in victim.nodes if ref.block == victim.index]
        self.steps += 1
        self.space.erase(victim)
