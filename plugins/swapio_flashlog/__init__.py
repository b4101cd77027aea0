"""flashlog: a swap area kept as a JFFS2-format log on a simulated NOR flash device.

Layers, bottom up: :mod:`._nodes` / :mod:`._compress` / :mod:`._scan` (sans-I/O JFFS2
codec), :mod:`.device` (flash simulator over an image file), :mod:`.log` (the log: index,
mount, summaries, garbage collection), :mod:`.plugin` (swapio hooks) and :mod:`.cli`.
"""

from __future__ import annotations

from swapio_flashlog._nodes import (
    Cleanmarker,
    Compression,
    Dirent,
    NodeType,
    Padding,
    RawInode,
    SumDirent,
    SumInode,
    Summary,
    crc32,
    decode,
    encode,
)
from swapio_flashlog._scan import BadNode, BlockScanner, Dirt, Empty, NodeFound, scan_block

__all__ = [
    "BadNode",
    "BlockScanner",
    "Cleanmarker",
    "Compression",
    "Dirent",
    "Dirt",
    "Empty",
    "NodeFound",
    "NodeType",
    "Padding",
    "RawInode",
    "SumDirent",
    "SumInode",
    "Summary",
    "crc32",
    "decode",
    "encode",
    "scan_block",
]
