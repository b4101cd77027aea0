"""Which of a GC victim's live nodes are intact, checked column by column (sans-I/O).

Garbage collection copies nodes verbatim (``jffs2_garbage_collect_pristine``) and must not
copy a damaged one, so every CRC of every live node is checked first — what
:func:`swapio_flashlog._nodes.verify` does for one node.  For the usual case, a victim full
of ``jffs2_raw_inode`` nodes, the checks run over all of them at once: one ``struct`` unpack
of each 68-byte header (``map``), and the three CRCs (``hdr_crc`` over bytes 0..7,
``node_crc`` over bytes 0..59, ``data_crc`` over the payload) as one ``map`` of the CRC
function each, compared column against column.  A node that does not pass these checks (or
is not an inode node) is handed to :func:`~swapio_flashlog._nodes.verify` itself, which
decides exactly as it always did: the column checks are a subset of its checks, so a node
they pass, it passes too.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from operator import add, xor

from swapio_flashlog._nodes import INODE_SIZE, MAGIC, NodeType, verify, zlib_crc32
from swapio_flashlog.errors import NodeFormatError

_INV = 0xFFFFFFFF
#: magic, nodetype, totlen, hdr_crc, csize, data_crc, node_crc of a ``jffs2_raw_inode``.
_FIELDS = struct.Struct("<HHII36xI8xII")


def intact_prefix(
    span: memoryview, offsets: Sequence[int], totlens: Sequence[int], inode: Sequence[bool]
) -> int:
    """How many of the nodes at ``offsets`` in ``span`` (each ``totlens[i]`` bytes; an inode
    node where ``inode[i]``), counted from the first, pass every CRC check.  The copy stops
    at the first damaged node: it (and what follows) stays where it is."""
    n = len(offsets)
    suspect = _suspects(span, offsets, totlens, inode)
    for i in suspect:
        raw = span[offsets[i] : offsets[i] + totlens[i]]
        try:
            verify(raw)
        except NodeFormatError:
            return i
    return n


def _suspects(
    span: memoryview, offsets: Sequence[int], totlens: Sequence[int], inode: Sequence[bool]
) -> list[int]:
    """Indices of the nodes the column checks cannot vouch for, in order."""
    n = len(offsets)
    if not all(inode) or any(t < INODE_SIZE for t in totlens):
        return list(range(n))
    if max(map(add, offsets, totlens)) > len(span):
        return list(range(n))
    cols = list(zip(*map(_FIELDS.unpack_from, repeat(span, n), offsets), strict=True))
    magic, kind, tot, hdr, csize, data, node = cols
    heads = list(map(add, offsets, repeat(8, n)))
    crc_span = list(map(add, offsets, repeat(INODE_SIZE - 8, n)))
    payload = list(map(add, offsets, repeat(INODE_SIZE, n)))
    hdrs = _crcs(span, offsets, heads)
    nodes = _crcs(span, offsets, crc_span)
    datas = _crcs(span, payload, list(map(add, offsets, totlens)))
    totals = list(totlens)
    if (
        magic.count(MAGIC) == n
        and kind.count(NodeType.INODE) == n
        and list(tot) == totals
        and list(map(add, csize, repeat(INODE_SIZE, n))) == totals
        and list(hdr) == hdrs
        and list(node) == nodes
        and list(data) == datas
    ):
        return []
    checks = zip(magic, kind, tot, hdr, csize, data, node, hdrs, nodes, datas, totals, strict=True)
    return [
        i
        for i, (m, k, t, h, c, d, nc, h2, nc2, d2, t2) in enumerate(checks)
        if (m, k, t, h, c + INODE_SIZE, d, nc) != (MAGIC, NodeType.INODE, t2, h2, t2, d2, nc2)
    ]


def _crcs(span: memoryview, starts: Sequence[int], ends: Sequence[int]) -> list[int]:
    """The kernel's ``crc32(0, span[s:e])`` of every range, as one ``map``."""
    views = map(span.__getitem__, map(slice, starts, ends))
    return list(map(xor, map(zlib_crc32, views, repeat(_INV)), repeat(_INV)))
