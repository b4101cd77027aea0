"""Erase-block bookkeeping and the log's option and report records.

``Block`` mirrors ``struct jffs2_eraseblock`` (``fs/jffs2/nodelist.h``): where the block
is, what state it is in, and how many of its bytes are still live.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from swapio_flashlog._index import NodeRef
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    INODE_SIZE,
    JFFS2_PAGE,
    SUM_INODE_SIZE,
    pad,
    summary_span,
)
from swapio_flashlog.device import Geometry

#: Bytes a live 4 KiB chunk costs on flash: the node plus its summary entry.
CHUNK_COST = pad(INODE_SIZE + JFFS2_PAGE) + SUM_INODE_SIZE


class BlockState(enum.Enum):
    FREE = "free"  # erased (and cleanmarked): ready to be a write head
    ERASE = "erase"  # needs an erase before use (all 0xFF without cleanmarker, or garbage)
    OPEN = "open"  # a write head
    FULL = "full"  # closed (summary written, or found partly written at mount)
    BAD = "bad"


class Block:
    """Per-erase-block state (``struct jffs2_eraseblock``)."""

    __slots__ = (
        "blank",
        "index",
        "live",
        "nodes",
        "pinned",
        "pos",
        "scrub",
        "start",
        "state",
        "sum_entries",
        "sum_ok",
        "sum_size",
        "summarized",
        "used",
    )

    def __init__(self, index: int, start: int) -> None:
        self.index = index
        self.start = start
        self.state = BlockState.ERASE
        self.pos = 0
        self.live = 0  # bytes of nodes still needed
        self.used = 0  # bytes of all nodes written (live + obsolete)
        self.nodes: list[NodeRef] = []
        self.summarized = False
        self.scrub = False
        self.pinned = 0  # live nodes that failed their CRC: the block may not be erased
        self.sum_size = 0
        self.sum_ok = True
        #: Summary entries of the nodes programmed so far, encoded back to back (a write
        #: head's summary is built as it fills, not when it closes).
        self.sum_entries = bytearray()
        #: Known erased after its write position (erased or formatted by this process);
        #: otherwise a free block is read through before it is written.
        self.blank = False

    def gain(self, eb: int) -> int:
        """Bytes a collection of this block would free (its size less what stays live)."""
        entries = (self.live // JFFS2_PAGE + 1) * 24
        return eb - CLEANMARKER_SIZE - summary_span(entries) - self.live


@dataclass(frozen=True)
class LogOptions:
    """How a log writes and collects.  ``cleanmarkers=None``: detect from the image."""

    summaries: bool = True
    cleanmarkers: bool | None = None
    reserve_blocks: int = 2
    policy: Literal["greedy", "jffs2"] = "greedy"
    wl_min_delta: int = 4
    sync: bool = False
    seed: int = 0


@dataclass(frozen=True)
class BlockReport:
    index: int
    state: str
    erase_count: int
    nodes: int
    live_nodes: int
    live: int
    dirty: int
    free: int
    summarized: bool


@dataclass(frozen=True)
class LogReport:
    """What ``swapio flash inspect`` prints."""

    geometry: Geometry
    cleanmarkers: bool
    blocks: tuple[BlockReport, ...]
    erase_min: int
    erase_mean: float
    erase_max: int
    programmed_bytes: int
    host_bytes: int
    files: dict[str, int] = field(default_factory=dict)

    @property
    def write_amplification(self) -> float | None:
        return self.programmed_bytes / self.host_bytes if self.host_bytes else None


def align(n: int, unit: int) -> int:
    """``n`` rounded up to a multiple of ``unit``."""
    return (n + unit - 1) // unit * unit
