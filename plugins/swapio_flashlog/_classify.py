"""What a mount makes of one scanned erase block (sans-I/O).

The power-loss rules of the log, applied to the events of :func:`~._scan.scan_block`:

* a block that does not start with a node is a half-erased block (or a torn cleanmarker):
  **garbage**, to be erased;
* damage followed by a valid node, or a node running past the block end, is **corrupt**:
  something that was completed has since been damaged (or the geometry is wrong);
* damage only after the last valid node is a **torn** tail (a cut program at the write
  head): the valid nodes count, the block is scrubbed;
* a block with only its cleanmarker is **free**; anything else is **full** (closed).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from swapio_flashlog._nodes import CLEANMARKER_SIZE, Summary
from swapio_flashlog._scan import BadNode, Dirt, NodeFound, ScanEvent


class Verdict(enum.Enum):
    GARBAGE = "garbage"
    CORRUPT = "corrupt"
    TORN = "torn"
    FREE = "free"
    FULL = "full"


@dataclass(frozen=True)
class BlockVerdict:
    """The classification, the nodes to take, and what the torn tail held."""

    verdict: Verdict
    found: tuple[NodeFound, ...] = ()
    end: int = 0  # block-relative offset just past the last valid node
    summarized: bool = False
    torn_inodes: tuple[tuple[int, int], ...] = ()  # (ino, version) named by torn nodes
    problem: str = ""  # for CORRUPT: what is wrong and where


def classify_block(events: Sequence[ScanEvent], start: int, erase_block: int) -> BlockVerdict:
    """Classify the scan events of the erase block at absolute offset ``start``."""
    if not events:
        return BlockVerdict(Verdict.GARBAGE)
    first = events[0]
    if not (isinstance(first, NodeFound) and first.offset == start):
        return BlockVerdict(Verdict.GARBAGE)
    last_good = max(i for i, e in enumerate(events) if isinstance(e, NodeFound))
    for i, event in enumerate(events):
        if isinstance(event, Dirt) and "past the erase block end" in event.reason:
            return BlockVerdict(
                Verdict.CORRUPT,
                problem=f"node at 0x{event.offset:08x} crosses the erase-block boundary; "
                f"wrong erase-block size ({erase_block} bytes)?",
            )
        if isinstance(event, BadNode | Dirt) and i < last_good:
            hint = ""
            if "cleanmarker" in event.reason:
                hint = f"; wrong erase-block size ({erase_block} bytes)?"
            return BlockVerdict(
                Verdict.CORRUPT,
                problem=f"corrupt data at 0x{event.offset:08x} in erase block "
                f"{start // erase_block} ({event.reason}){hint}",
            )
    found = tuple(e for e in events[: last_good + 1] if isinstance(e, NodeFound))
    end = found[-1].offset + found[-1].length - start
    summarized = any(isinstance(f.node, Summary) for f in found)
    tail = events[last_good + 1 :]
    torn = any(isinstance(e, BadNode | Dirt) for e in tail)
    torn_inodes = tuple(
        (e.inode.ino, e.inode.version) for e in tail if isinstance(e, BadNode) and e.inode
    )
    if summarized:
        verdict = Verdict.FULL
    elif torn:
        verdict = Verdict.TORN
    elif end <= CLEANMARKER_SIZE and len(found) == 1:
        verdict = Verdict.FREE
    else:
        verdict = Verdict.FULL
    return BlockVerdict(verdict, found, end, summarized, torn_inodes)
