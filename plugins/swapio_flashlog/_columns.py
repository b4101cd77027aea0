"""Data-node headers of a write batch, built column by column (sans-I/O).

A swap-out of *n* pages becomes *n* ``jffs2_raw_inode`` nodes (``include/uapi/linux/jffs2.h``)
that differ only in a few fields: ``version`` and ``offset`` always; ``totlen``, ``hdr_crc``,
``csize``, ``dsize``, ``compr`` and ``data_crc`` when pages differ in size or some are
all-zero (``JFFS2_COMPR_ZERO``).  Instead of packing each node in a Python loop, a run of
headers is laid out as one template repeated *n* times, and each varying field is written
for the whole run at once through a strided ``memoryview`` of 32-bit words (the 68-byte
header is 17 little-endian words; every field that varies is a whole word).  The CRCs are
computed with ``map`` over the run: ``data_crc`` over each page, ``node_crc`` over bytes
0..59 of each header (``jffs2_raw_inode.node_crc``), ``hdr_crc`` over bytes 0..7 (memoised
per ``totlen``).  The bytes are exactly those of :func:`swapio_flashlog._nodes.encode_inode`
(``tests/flashlog/test_columns.py`` compares them node by node).

The CRC is the kernel's ``crc32(0, ...)``: zlib's ``crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate, repeat

from swapio_flashlog._nodes import (
    INODE_FIXED,
    INODE_SIZE,
    MAGIC,
    SUM_INODE,
    Buf,
    Compression,
    NodeType,
    hdr_crc,
    zlib_crc32,
)

_INV = 0xFFFFFFFF
#: Word index of each varying field in a 68-byte ``jffs2_raw_inode`` (17 words).
W_TOTLEN, W_HDR_CRC, W_VERSION, W_OFFSET, W_CSIZE, W_DSIZE, W_COMPR = 1, 2, 4, 11, 12, 13, 14
W_DATA_CRC, W_NODE_CRC = 15, 16
WORDS = INODE_SIZE // 4
NODE_CRC_SPAN = INODE_SIZE - 8  # node_crc covers the header up to data_crc

#: Strided word views need native little-endian 32-bit ``array('I')`` items.
COLUMNS_NATIVE = sys.byteorder == "little" and array("I").itemsize == 4

_ZERO_CRC: dict[int, int] = {}
_ZEROS = bytes(1 << 16)
_INVERT = bytes(range(255, -1, -1))
_UNPACKERS: dict[int, tuple[struct.Struct, struct.Struct]] = {}


def zero_crc(n: int) -> int:
    """zlib-convention CRC of ``n`` zero bytes (memoised: a handful of page sizes)."""
    value = _ZERO_CRC.get(n)
    if value is None:
        value = _ZERO_CRC[n] = zlib_crc32(bytes(n), _INV)
    return value


class Batch:
    """The columns of one write batch: a node per page, versions counting up.

    ``offsets``/``pages``/``sizes`` are the file offset, bytes and length of each node
    (each page fits one node); ``inode`` is ino, first version, mode, isize and time.
    """

    __slots__ = (
        "comprs",
        "csizes",
        "data",
        "data_crcs",
        "dsizes",
        "ino",
        "isize",
        "lengths",
        "mode",
        "n",
        "now",
        "offset_words",
        "offsets",
        "pads",
        "totlens",
        "uniform",
        "version",
    )

    def __init__(
        self,
        inode: tuple[int, int, int, int, int],
        offsets: Sequence[int],
        pages: Sequence[Buf],
        sizes: Sequence[int],
        unit: int,
    ) -> None:
        self.ino, self.version, self.mode, self.isize, self.now = inode
        n = self.n = len(pages)
        self.offsets = offsets
        self.dsizes = sizes
        raw = array("I", map(zlib_crc32, pages, repeat(_INV)))
        self.offset_words = memoryview(array("I", offsets))
        size = sizes[0] if n else 0
        same = sizes.count(size) == n
        zero = [False] * n
        if same:
            z = zero_crc(size)
            if z in raw:  # rare: confirm byte by byte (a CRC match alone proves nothing)
                zero = [c == z and pages[i] == _ZEROS[:size] for i, c in enumerate(raw)]
        else:
            zero = [
                c == zero_crc(s) and p == _ZEROS[:s]
                for c, s, p in zip(raw, sizes, pages, strict=True)
            ]
        zeros = zero.count(True)
        self.uniform = same and zeros == 0
        self.data_crcs = _inverted(raw)
        if zeros == 0:
            self.data: Sequence[Buf] = pages
            self.csizes: Sequence[int] = sizes
            self.comprs: Sequence[int] = [Compression.NONE] * n
        else:
            self.data = [b"" if z else p for z, p in zip(zero, pages, strict=True)]
            self.csizes = [0 if z else s for z, s in zip(zero, sizes, strict=True)]
            self.comprs = [Compression.ZERO if z else Compression.NONE for z in zero]
            crcs = [0 if z else c ^ _INV for z, c in zip(zero, raw, strict=True)]
            self.data_crcs = memoryview(array("I", crcs))
        if self.uniform:
            totlen = INODE_SIZE + size
            length = -(-totlen // unit) * unit
            self.totlens: Sequence[int] = [totlen] * n
            self.lengths: Sequence[int] = [length] * n
        else:
            self.totlens = [INODE_SIZE + c for c in self.csizes]
            self.lengths = [-(-t // unit) * unit for t in self.totlens]
        self.pads = [ln - t for ln, t in zip(self.lengths, self.totlens, strict=True)]

    def entries(self, i: int, k: int, where: Sequence[int]) -> bytes:
        """``jffs2_sum_inode_flash`` entries of nodes ``i .. i+k-1`` at block offsets
        ``where``."""
        return b"".join(
            map(
                SUM_INODE.pack,
                repeat(NodeType.INODE, k),
                repeat(self.ino, k),
                range(self.version + i, self.version + i + k),
                where,
                self.totlens[i : i + k],
            )
        )

    def cumulative(self) -> list[int]:
        """Flash bytes of nodes [0, i) for every i (``n + 1`` entries)."""
        return list(accumulate(self.lengths, initial=0))

    def headers(self, buf: memoryview, i: int, k: int) -> tuple[bytes, ...]:
        """Lay out the headers of nodes ``i .. i+k-1`` at the start of ``buf``; return each
        header's bytes (their ``node_crc`` included)."""
        size = k * INODE_SIZE
        end = i + k
        totlen = self.totlens[i]
        INODE_FIXED.pack_into(
            buf, 0, MAGIC, NodeType.INODE, totlen, hdr_crc(NodeType.INODE, totlen),
            self.ino, 0, self.mode, 0, 0, self.isize, self.now, self.now, self.now, 0,
            self.csizes[i], self.dsizes[i], self.comprs[i], 0, 0,
        )  # fmt: skip
        buf[INODE_SIZE:size] = bytes(buf[:INODE_SIZE]) * (k - 1)  # CRC words: set below
        words = buf[:size].cast("I")
        words[W_VERSION::WORDS] = array("I", range(self.version + i, self.version + end))
        words[W_OFFSET::WORDS] = self.offset_words[i:end]
        if not self.uniform:
            totlens = self.totlens[i:end]
            words[W_TOTLEN::WORDS] = array("I", totlens)
            words[W_HDR_CRC::WORDS] = array("I", [hdr_crc(NodeType.INODE, t) for t in totlens])
            words[W_CSIZE::WORDS] = array("I", self.csizes[i:end])
            words[W_DSIZE::WORDS] = array("I", self.dsizes[i:end])
            words[W_COMPR::WORDS] = array("I", self.comprs[i:end])
        words[W_DATA_CRC::WORDS] = self.data_crcs[i:end]
        spans, whole = _unpackers(k)
        raw = array("I", map(zlib_crc32, spans.unpack_from(buf), repeat(_INV)))
        words[W_NODE_CRC::WORDS] = _inverted(raw)
        return whole.unpack_from(buf)


def _unpackers(k: int) -> tuple[struct.Struct, struct.Struct]:
    """Structs splitting ``k`` headers into their ``node_crc`` spans / whole headers (one C
    call each, instead of ``k`` slices)."""
    pair = _UNPACKERS.get(k)
    if pair is None:
        pair = (
            struct.Struct(f"{NODE_CRC_SPAN}s8x" * k),
            struct.Struct(f"{INODE_SIZE}s" * k),
        )
        if len(_UNPACKERS) < 4096:
            _UNPACKERS[k] = pair
    return pair


def _inverted(crcs: array[int]) -> memoryview:
    """``crc ^ 0xFFFFFFFF`` of every item (zlib's convention to the kernel's), as one
    byte translation."""
    return memoryview(crcs.tobytes().translate(_INVERT)).cast("I")
