"""The erase-block size of an image without a sidecar, from its own bytes (sans-I/O).

An image made by ``mkfs.jffs2`` (or another tool) carries no record of the erase block it
was built for, but its layout gives it away:

* **cleanmarkers** (``JFFS2_NODETYPE_CLEANMARKER``, ``mkfs.jffs2`` writes one at the start
  of every erase block unless ``-n``): the right size is the smallest candidate at whose
  every multiple the image holds a cleanmarker (a smaller one would land inside blocks);
* **summary nodes** (``sumtool``, ``fs/jffs2/summary.h``): every block that holds nodes
  ends with a ``jffs2_sum_marker`` — the summary's offset and ``JFFS2_SUM_MAGIC`` — in its
  last 8 bytes.

Candidates are the powers of two from 4 KiB to 1 MiB (NOR and NAND erase blocks) no
larger than the image.  An image written without ``--pad`` ends in a partial block; its
size is then refused by the geometry check, which says how to pad it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    MAGIC,
    SUM_MARKER_SIZE,
    SUMMARY_SIZE,
    NodeType,
    decode_marker,
    encode_cleanmarker,
)

MIN_ERASE_BLOCK = 4096
MAX_ERASE_BLOCK = 1 << 20
_ERASED = b"\xff" * CLEANMARKER_SIZE
_SUMMARY_HEAD = struct.pack("<HH", MAGIC, NodeType.SUMMARY)

Read = Callable[[int, int], bytes]


def candidates(size: int) -> list[int]:
    """Erase-block sizes an image of ``size`` bytes could have, smallest first."""
    out = []
    eb = MIN_ERASE_BLOCK
    while eb <= MAX_ERASE_BLOCK and eb <= size:
        out.append(eb)
        eb <<= 1
    return out


def detect_erase_block(read: Read, size: int) -> int | None:
    """The erase-block size the image's cleanmarkers or summary markers show, or None."""
    for eb in candidates(size):
        if _cleanmarkers_fit(read, size, eb) or _summaries_fit(read, size, eb):
            return eb
    return None


def _cleanmarkers_fit(read: Read, size: int, eb: int) -> bool:
    """Every block, the last partial one too, starts with a cleanmarker — except a trailing
    run of erased blocks (padding added after ``mkfs.jffs2``)."""
    marker = encode_cleanmarker()
    heads = [read(start, CLEANMARKER_SIZE) for start in range(0, size - CLEANMARKER_SIZE + 1, eb)]
    while heads and heads[-1] == _ERASED:
        heads.pop()
    return bool(heads) and all(head == marker for head in heads)


def _summaries_fit(read: Read, size: int, eb: int) -> bool:
    """Every block that holds nodes ends with a summary marker pointing at a summary node
    inside it — except the last such block, which ``sumtool`` may leave without one."""
    seen = False
    missing = 0
    for start in range(0, size - eb + 1, eb):
        offset = decode_marker(read(start + eb - SUM_MARKER_SIZE, SUM_MARKER_SIZE))
        if (
            offset is not None
            and 0 <= offset <= eb - SUMMARY_SIZE - SUM_MARKER_SIZE
            and read(start + offset, 4) == _SUMMARY_HEAD
        ):
            if missing:
                return False  # a block without a summary before this one: not the last
            seen = True
        elif read(start, CLEANMARKER_SIZE) != _ERASED:
            missing += 1
    return seen and missing <= 1
