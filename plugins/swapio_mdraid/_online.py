"""The online resync of an assembled mirror (``md_bitmap_start_sync`` / ``md_bitmap_end_sync``).

Every chunk that needs a resync (its bit was set when the mirror was assembled after a
crash, or it was written while a leg was missing) is copied from the first in-sync leg to
the other healthy legs, one range copy per target (:meth:`SwapArea.copy`, the
``swap_copy`` hook: ``copy_file_range`` between file legs).  A chunk being copied holds off
writes to every chunk sharing the copied pages (:meth:`ChunkGate.hold`) and waits for the
writes already in flight there; a target that fails mid-copy keeps the chunk ``NEEDED``.
Bits are then cleared by the daemon's two sweeps, like any others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swapio.errors import SwapioError
from swapio_mdraid._fanout import is_leg_failure

if TYPE_CHECKING:
    from swapio_mdraid._legs import Leg
    from swapio_mdraid._mirror import Mirror


class OnlineResync:
    """Copies the chunks that need it, for one :class:`Mirror` (one run at a time: the
    mirror holds its resync lock around :meth:`run`)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    async def run(self) -> int:
        """Copy every chunk that needs it; the number of chunks copied."""
        mirror = self.mirror
        intent = mirror.intent
        source = mirror.source()
        targets = [leg for leg in mirror.healthy() if leg is not source]
        copied = 0
        for chunk in range(intent.bitmap.chunks):
            if not intent.needs_sync(chunk):
                continue
            first, count = self.chunk_slots(chunk)
            # every chunk sharing the copied pages is held (chunks smaller than a page)
            async with mirror.gate.hold(mirror.chunks_of(first, count)):
                aborted = True
                try:
                    if intent.start_sync(chunk):
                        # a target that failed mid-copy keeps the chunk NEEDED
                        aborted = not await self.copy_chunk(first, count, source, targets)
                        copied += 1
                    else:
                        aborted = False
                finally:
                    intent.end_sync(chunk, aborted)
        for leg in targets:
            if not leg.faulty:
                leg.in_sync = True
        return copied

    def chunk_slots(self, chunk: int) -> tuple[int, int]:
        """``(first slot, slot count)`` of the pages holding ``chunk``."""
        mirror = self.mirror
        first = chunk * mirror.chunk_size // mirror.page_size
        end = min((chunk + 1) * mirror.chunk_size, mirror.pages * mirror.page_size)
        return first, -(-end // mirror.page_size) - first

    async def copy_chunk(self, first: int, count: int, source: Leg, targets: list[Leg]) -> bool:
        """Copy slots to every target: one range copy each (:meth:`SwapArea.copy`)."""
        complete = True
        for leg in targets:
            if leg.faulty:
                complete = False
                continue
            try:
                await source.area.copy(first, leg.area, first, count)
            except SwapioError as exc:
                if not is_leg_failure(exc):
                    raise
                # a copy fails for the source's reasons too: the source is read alone
                # (its error propagates, as a failed read always did) before the target
                # is blamed
                await source.area.read(first, 1)
                await self.mirror.fail_leg(leg, exc)
                complete = False
        return complete
