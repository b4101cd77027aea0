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

from swapio_flashlog._append import Appender, Pending
from swapio_flashlog._blocks import Block, BlockState, LogOptions
from swapio_flashlog._index import DirentIndex, FileState, RefKind
from swapio_flashlog._nodes import verify
from swapio_flashlog._space import Space
from swapio_flashlog._victim import pick_victim
from swapio_flashlog.errors import NodeFormatError


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
        #: The scratch buffer of the request being served (GC during an append reuses it:
        #: the append programmed its run before asking for the block GC makes room for).
        self.scratch: memoryview | None = None

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
        batch: list[Pending] = []
        damaged = False
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
        for ref in live:
            raw = span[ref.offset - first : ref.offset - first + ref.totlen]  # not copied
            try:
                verify(raw)
            except NodeFormatError:
                if not ref.poisoned:
                    ref.poisoned = True
                    victim.pinned += 1
                damaged = True
                break  # keep it (and what follows) where it is
            batch.append(Pending(ref.moved(0, 0, 0), (raw,), ref.totlen, ref))
        self.appender.program("gc", batch, self.scratch, self._moved)
        if damaged:
            victim.scrub = False
            return
        self.steps += 1
        self.space.erase(victim)

    def _moved(self, run: list[Pending]) -> None:
        """Point the index at the copies that just reached flash."""
        blocks = self.space.blocks
        for item in run:
            old, new = item.origin, item.ref
            assert old is not None
            if old.kind is RefKind.INODE:
                self.files[old.ino].replace(old, new)
            elif old.kind is RefKind.DIRENT:
                self.dirents.replace(old, new)
            else:
                new.refs, old.refs = old.refs, 0
            blocks[old.block].live -= old.length
