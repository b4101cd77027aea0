"""JFFS2 on-flash node codec, little-endian (``include/uapi/linux/jffs2.h``, ``fs/jffs2/``).

Sans-I/O: every function takes bytes and returns records, or takes records and returns
bytes.  Layouts are the kernel's packed structures:

* ``struct jffs2_unknown_node`` (12 B): magic, nodetype, totlen, hdr_crc.
* ``struct jffs2_raw_inode`` (68 B + data), ``struct jffs2_raw_dirent`` (40 B + name).
* ``struct jffs2_raw_summary`` (32 B) + entries + ``struct jffs2_sum_marker`` (8 B) at the
  very end of the erase block (``fs/jffs2/summary.h``).

CRCs are Linux ``crc32(0, buf, len)`` (crc32_le, seed 0, no inversion).  ``hdr_crc`` covers
the first 8 bytes with ``JFFS2_NODE_ACCURATE`` forced on (``fs/jffs2/scan.c``); the inode
``node_crc`` covers bytes 0..59, the dirent ``node_crc`` bytes 0..31, the summary
``node_crc`` bytes 0..23 and ``sum_crc`` the summary body after the 32-byte header.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from swapio_flashlog.errors import NodeCRCError, NodeFormatError

#: Any contiguous bytes-like input a decoder accepts.
Buf: TypeAlias = bytes | bytearray | memoryview

MAGIC = 0x1985
OLD_MAGIC = 0x1984
SWAPPED_MAGIC = 0x8519
SUM_MAGIC = 0x02851885
NODE_ACCURATE = 0x2000
COMPAT_MASK = 0xC000
MAX_NAME_LEN = 254
#: A data node never holds more than one page and never crosses a page (``write.c``).
JFFS2_PAGE = 4096

HEADER_SIZE = 12
INODE_SIZE = 68
DIRENT_SIZE = 40
SUMMARY_SIZE = 32
SUM_MARKER_SIZE = 8
SUM_INODE_SIZE = 18
SUM_DIRENT_SIZE = 24
CLEANMARKER_SIZE = HEADER_SIZE

_HDR = struct.Struct("<HHII")
_INODE = struct.Struct("<HHIIIIIHHIIIIIIIBBHII")
_DIRENT = struct.Struct("<HHIIIIIIBBHII")
_SUMMARY = struct.Struct("<HHIIIIIII")
_SUM_INODE = struct.Struct("<HIIII")
_SUM_DIRENT = struct.Struct("<HIIIIIBB")
_MARKER = struct.Struct("<II")

assert _INODE.size == INODE_SIZE
assert _DIRENT.size == DIRENT_SIZE
assert _SUMMARY.size == SUMMARY_SIZE
assert _SUM_INODE.size == SUM_INODE_SIZE
assert _SUM_DIRENT.size == SUM_DIRENT_SIZE


class NodeType(enum.IntEnum):
    """``JFFS2_NODETYPE_*``: compat bits | ACCURATE | id."""

    DIRENT = 0xE001
    INODE = 0xE002
    CLEANMARKER = 0x2003
    PADDING = 0x2004
    SUMMARY = 0x2006
    XATTR = 0xE008
    XREF = 0xE009


class Compat(enum.IntEnum):
    """``JFFS2_FEATURE_*``: what a reader that does not know a node type must do."""

    INCOMPAT = 0xC000
    ROCOMPAT = 0x8000
    RWCOMPAT_COPY = 0x4000
    RWCOMPAT_DELETE = 0x0000


class Compression(enum.IntEnum):
    """``JFFS2_COMPR_*`` ids (``jffs2.h``)."""

    NONE = 0
    ZERO = 1
    RTIME = 2
    RUBINMIPS = 3
    COPY = 4
    DYNRUBIN = 5
    ZLIB = 6
    LZO = 7


class DirentType(enum.IntEnum):
    """``DT_*`` values stored in ``jffs2_raw_dirent.type``."""

    UNKNOWN = 0
    FIFO = 1
    CHR = 2
    DIR = 4
    BLK = 6
    REG = 8
    LNK = 10
    SOCK = 12


try:  # ISA-L's crc32 (PCLMUL) computes zlib's function 8x faster on a 4 KiB node
    from isal.isal_zlib import crc32 as _zlib_crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same values
    from zlib import crc32 as _zlib_crc32

#: zlib's ``crc32(data, value)`` (pre- and post-inverted); :func:`crc32` is the kernel's.
zlib_crc32 = _zlib_crc32


def crc32(data: Buf, seed: int = 0) -> int:
    """Linux ``crc32_le(seed, data)``: reflected 0xEDB88320, no pre/post inversion."""
    return zlib_crc32(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def pad(length: int) -> int:
    """``PAD(x)``: nodes are 4-byte aligned."""
    return (length + 3) & ~3


@dataclass(frozen=True)
class NodeHeader:
    """``struct jffs2_unknown_node``; ``accurate`` is False for a node obsoleted in place."""

    nodetype: int
    totlen: int
    accurate: bool

    @property
    def base_type(self) -> int:
        """The nodetype with ``JFFS2_NODE_ACCURATE`` forced on (how the scan compares)."""
        return self.nodetype | NODE_ACCURATE


@dataclass(frozen=True)
class RawInode:
    """``struct jffs2_raw_inode``: one data range of one version of an inode.

    ``data`` is the stored (possibly compressed) payload of ``csize`` bytes.
    """

    ino: int
    version: int
    mode: int
    offset: int
    dsize: int
    isize: int
    data: bytes = field(default=b"", repr=False)
    compr: Compression | int = Compression.NONE
    uid: int = 0
    gid: int = 0
    atime: int = 0
    mtime: int = 0
    ctime: int = 0
    usercompr: int = 0
    flags: int = 0

    @property
    def csize(self) -> int:
        return len(self.data)

    @property
    def totlen(self) -> int:
        return INODE_SIZE + len(self.data)


@dataclass(frozen=True)
class Dirent:
    """``struct jffs2_raw_dirent``: name ``name`` in directory ``pino`` is inode ``ino``.

    ``ino == 0`` records a deletion (unlink).
    """

    pino: int
    version: int
    ino: int
    name: bytes
    type: int = DirentType.REG
    mctime: int = 0

    @property
    def totlen(self) -> int:
        return DIRENT_SIZE + len(self.name)


@dataclass(frozen=True)
class Cleanmarker:
    """The 12-byte node that opens a freshly erased NOR block."""

    totlen: int = CLEANMARKER_SIZE


@dataclass(frozen=True)
class Padding:
    """``JFFS2_NODETYPE_PADDING``: ``totlen`` bytes of deliberate dirt."""

    totlen: int


class SumInode(NamedTuple):
    """``struct jffs2_sum_inode_flash``: an inode node at ``offset`` within the block.

    A named tuple rather than a frozen dataclass: a mount decodes one per node, and tuple
    construction is several times cheaper.
    """

    ino: int
    version: int
    offset: int
    totlen: int
    nodetype: int = NodeType.INODE

    @property
    def size(self) -> int:
        return SUM_INODE_SIZE


@dataclass(frozen=True)
class SumDirent:
    """``struct jffs2_sum_dirent_flash``: a dirent node at ``offset`` within the block."""

    totlen: int
    offset: int
    pino: int
    version: int
    ino: int
    name: bytes
    type: int = DirentType.REG
    nodetype: int = NodeType.DIRENT

    @property
    def size(self) -> int:
        return SUM_DIRENT_SIZE + len(self.name)


SumEntry = SumInode | SumDirent


@dataclass(frozen=True)
class Summary:
    """``struct jffs2_raw_summary`` + entries + ``struct jffs2_sum_marker``.

    The node fills the erase block from ``offset`` (its place in the block) to the end;
    ``totlen`` is that span.  ``cln_mkr`` is the cleanmarker size (0: none), ``padded`` the
    bytes of padding nodes in the block.
    """

    entries: tuple[SumEntry, ...]
    totlen: int
    offset: int
    cln_mkr: int = CLEANMARKER_SIZE
    padded: int = 0


@dataclass(frozen=True)
class UnknownNode:
    """A node of a type this codec does not interpret (xattr, xref, future types)."""

    nodetype: int
    totlen: int
    body: bytes

    @property
    def compat(self) -> Compat:
        return Compat(self.nodetype & COMPAT_MASK)


Node = RawInode | Dirent | Cleanmarker | Padding | Summary | UnknownNode


def summary_span(entries_size: int) -> int:
    """Minimum bytes a summary with ``entries_size`` bytes of entries takes (4-aligned)."""
    return pad(SUMMARY_SIZE + entries_size + SUM_MARKER_SIZE)


# --- encoding ---------------------------------------------------------------------------


def _header(nodetype: int, totlen: int) -> bytes:
    first = struct.pack("<HHI", MAGIC, nodetype, totlen)
    return first + struct.pack("<I", crc32(first))


def encode_inode(node: RawInode) -> bytes:
    """Encode a ``jffs2_raw_inode`` with its data; returns ``totlen`` bytes (unpadded)."""
    head = _header(NodeType.INODE, node.totlen)
    body = struct.pack(
        "<IIIHHIIIIIIIBBH",
        node.ino,
        node.version,
        node.mode,
        node.uid,
        node.gid,
        node.isize,
        node.atime,
        node.mtime,
        node.ctime,
        node.offset,
        node.csize,
        node.dsize,
        int(node.compr),
        node.usercompr,
        node.flags,
    )
    fixed = head + body  # node_crc covers bytes 0..59, i.e. not data_crc itself
    return fixed + struct.pack("<II", crc32(node.data), crc32(fixed)) + node.data


#: Bytes 0..59 of a ``jffs2_raw_inode`` (what ``node_crc`` covers), then data_crc + node_crc.
INODE_FIXED = _INODE_FIXED = struct.Struct("<HHIIIIIHHIIIIIIIBBH")
CRC_PAIR = _CRC_PAIR = struct.Struct("<II")
#: ``struct jffs2_sum_inode_flash``.
SUM_INODE = struct.Struct("<HIIII")
_NODE_ACCURATE_INODE = NodeType.INODE


def inode_header(
    ino: int,
    version: int,
    mode: int,
    isize: int,
    offset: int,
    dsize: int,
    csize: int,
    compr: int,
    data_crc: int,
    time: int = 0,
) -> bytes:
    """The 68-byte fixed part of a ``jffs2_raw_inode`` whose payload has ``data_crc``.

    The append path's encoder: the caller places ``csize`` payload bytes right after it
    (uid, gid, usercompr and flags are 0; atime = mtime = ctime = ``time``).  Equal to
    ``encode_inode(node)[:68]`` for the same fields.
    """
    totlen = INODE_SIZE + csize
    fixed = _INODE_FIXED.pack(
        MAGIC,
        _NODE_ACCURATE_INODE,
        totlen,
        _hdr_crc(_NODE_ACCURATE_INODE, totlen),
        ino,
        version,
        mode,
        0,
        0,
        isize,
        time,
        time,
        time,
        offset,
        csize,
        dsize,
        compr,
        0,
        0,
    )
    return fixed + _CRC_PAIR.pack(data_crc, crc32(fixed))


_HDR_CRCS: dict[tuple[int, int], int] = {}


def hdr_crc(nodetype: int, totlen: int) -> int:
    """``hdr_crc`` of a node header with ``JFFS2_NODE_ACCURATE`` set."""
    return _hdr_crc(nodetype, totlen)


def _hdr_crc(nodetype: int, totlen: int) -> int:
    """``hdr_crc`` of a node header (memoised: the append path uses a handful of sizes)."""
    key = (nodetype, totlen)
    value = _HDR_CRCS.get(key)
    if value is None:
        value = crc32(struct.pack("<HHI", MAGIC, nodetype, totlen))
        if len(_HDR_CRCS) < 4096:
            _HDR_CRCS[key] = value
    return value


def encode_dirent(node: Dirent) -> bytes:
    """Encode a ``jffs2_raw_dirent`` with its name (at most 254 bytes)."""
    if not 0 < len(node.name) <= MAX_NAME_LEN:
        raise NodeFormatError(f"dirent name of {len(node.name)} bytes; expected 1..254")
    head = _header(NodeType.DIRENT, node.totlen)
    body = struct.pack(
        "<IIIIBBH", node.pino, node.version, node.ino, node.mctime, len(node.name), node.type, 0
    )
    fixed = head + body
    return fixed + struct.pack("<II", crc32(fixed), crc32(node.name)) + node.name


def encode_cleanmarker() -> bytes:
    """The 12-byte NOR cleanmarker (``85 19 03 20 0c 00 00 00 b1 b0 1e e4``)."""
    return _header(NodeType.CLEANMARKER, CLEANMARKER_SIZE)


def encode_padding(totlen: int) -> bytes:
    """A padding node of ``totlen`` bytes (>= 12, multiple of 4); body is 0xFF."""
    if totlen < HEADER_SIZE or totlen % 4:
        raise NodeFormatError(f"padding of {totlen} bytes; expected a multiple of 4 >= 12")
    return _header(NodeType.PADDING, totlen) + b"\xff" * (totlen - HEADER_SIZE)


def encode_sum_inode(ino: int, version: int, offset: int, totlen: int) -> bytes:
    """A ``jffs2_sum_inode_flash`` entry for an inode node at ``offset`` in its block."""
    return _SUM_INODE.pack(NodeType.INODE, ino, version, offset, totlen)


def encode_entry(entry: SumEntry) -> bytes:
    """One ``jffs2_sum_inode_flash`` / ``jffs2_sum_dirent_flash`` entry."""
    return _encode_entry(entry)


def _encode_entry(entry: SumEntry) -> bytes:
    if isinstance(entry, SumInode):
        return _SUM_INODE.pack(entry.nodetype, entry.ino, entry.version, entry.offset, entry.totlen)
    fixed = _SUM_DIRENT.pack(
        entry.nodetype,
        entry.totlen,
        entry.offset,
        entry.pino,
        entry.version,
        entry.ino,
        len(entry.name),
        entry.type,
    )
    return fixed + entry.name


def encode_summary(summary: Summary) -> bytes:
    """Encode a summary node spanning ``summary.totlen`` bytes to the end of its block.

    Layout as ``jffs2_sum_write_data()``: header, entries, 0xFF fill, then the marker
    ``{offset, JFFS2_SUM_MAGIC}`` in the block's last 8 bytes.
    """
    entries = b"".join(_encode_entry(e) for e in summary.entries)
    return encode_summary_entries(
        entries,
        len(summary.entries),
        summary.totlen,
        summary.offset,
        summary.cln_mkr,
        summary.padded,
    )


def encode_summary_entries(
    entries: Buf, count: int, totlen: int, offset: int, cln_mkr: int, padded: int = 0
) -> bytes:
    """:func:`encode_summary` from ``count`` entries already encoded back to back (a write
    head keeps them so, one :func:`encode_entry` per node as it is programmed)."""
    datasize = totlen - SUMMARY_SIZE
    if totlen % 4 or datasize < len(entries) + SUM_MARKER_SIZE:
        raise NodeFormatError(
            f"summary of {len(entries)} entry bytes does not fit in {totlen} bytes"
        )
    body = (
        bytes(entries)
        + b"\xff" * (datasize - len(entries) - SUM_MARKER_SIZE)
        + _MARKER.pack(offset, SUM_MAGIC)
    )
    head = _header(NodeType.SUMMARY, totlen)
    fixed = head + struct.pack("<III", count, cln_mkr, padded)
    return fixed + struct.pack("<II", crc32(body), crc32(fixed)) + body


def encode(node: Node) -> bytes:
    """Encode any node record."""
    if isinstance(node, RawInode):
        return encode_inode(node)
    if isinstance(node, Dirent):
        return encode_dirent(node)
    if isinstance(node, Cleanmarker):
        return encode_cleanmarker()
    if isinstance(node, Padding):
        return encode_padding(node.totlen)
    if isinstance(node, Summary):
        return encode_summary(node)
    head = _header(node.nodetype, HEADER_SIZE + len(node.body))
    return head + node.body


# --- decoding ---------------------------------------------------------------------------


def decode_header(buf: Buf, offset: int = 0) -> NodeHeader:
    """Decode and check a 12-byte node header at ``buf[offset:]``.

    Raises :class:`NodeFormatError` for a short buffer or a foreign magic, and
    :class:`NodeCRCError` when ``hdr_crc`` (ACCURATE forced on) does not match.
    """
    if len(buf) - offset < HEADER_SIZE:
        raise NodeFormatError(
            f"node header needs {HEADER_SIZE} bytes, got {max(0, len(buf) - offset)}",
            offset=offset,
        )
    magic, nodetype, totlen, hdr_crc = _HDR.unpack_from(buf, offset)
    if magic != MAGIC:
        what = {
            OLD_MAGIC: "old JFFS1-era magic 0x1984",
            SWAPPED_MAGIC: "byte-swapped magic 0x8519 (a big-endian image?)",
        }.get(magic, f"0x{magic:04x}")
        raise NodeFormatError(f"expected JFFS2 magic 0x1985, found {what}", offset=offset)
    check = crc32(struct.pack("<HHI", magic, nodetype | NODE_ACCURATE, totlen))
    if check != hdr_crc:
        raise NodeCRCError(
            f"hdr_crc 0x{hdr_crc:08x} but header bytes give 0x{check:08x}", offset=offset
        )
    if totlen < HEADER_SIZE:
        raise NodeFormatError(f"totlen {totlen} is shorter than a node header", offset=offset)
    return NodeHeader(nodetype, totlen, bool(nodetype & NODE_ACCURATE))


def decode_inode(buf: Buf, offset: int = 0, *, check_data: bool = True) -> RawInode:
    """Decode a ``jffs2_raw_inode`` at ``buf[offset:]`` (header already checked or not).

    ``check_data=False`` skips ``data_crc`` (and leaves ``data`` empty): the summary mount
    reads only the 68-byte fixed part.
    """
    hdr = decode_header(buf, offset)
    if hdr.base_type != NodeType.INODE:
        raise NodeFormatError(
            f"expected an inode node, found type 0x{hdr.nodetype:04x}", offset=offset
        )
    if hdr.totlen < INODE_SIZE or len(buf) - offset < INODE_SIZE:
        raise NodeFormatError(
            f"inode node needs {INODE_SIZE} bytes, totlen {hdr.totlen}, have {len(buf) - offset}",
            offset=offset,
        )
    f = _INODE.unpack_from(buf, offset)
    (ino, version, mode, uid, gid, isize, atime, mtime, ctime, foff, csize, dsize) = f[4:16]
    compr, usercompr, flags, data_crc, node_crc = f[16:21]
    check = crc32(memoryview(buf)[offset : offset + INODE_SIZE - 8])
    if check != node_crc:
        raise NodeCRCError(
            f"inode node_crc 0x{node_crc:08x} but bytes give 0x{check:08x}", offset=offset
        )
    if INODE_SIZE + csize != hdr.totlen:
        raise NodeFormatError(
            f"inode totlen {hdr.totlen} but 68 + csize {csize} = {INODE_SIZE + csize}",
            offset=offset,
        )
    data = b""
    if check_data:
        end = offset + hdr.totlen
        if len(buf) < end:
            raise NodeFormatError(
                f"inode data needs {csize} bytes, only {len(buf) - offset - INODE_SIZE} present",
                offset=offset,
            )
        data = bytes(buf[offset + INODE_SIZE : end])
        dcheck = crc32(data)
        if dcheck != data_crc:
            raise NodeCRCError(
                f"inode ino {ino} version {version}: data_crc 0x{data_crc:08x} but data "
                f"gives 0x{dcheck:08x}",
                offset=offset,
            )
    comp: Compression | int
    try:
        comp = Compression(compr)
    except ValueError:
        comp = compr
    return RawInode(
        ino=ino,
        version=version,
        mode=mode,
        offset=foff,
        dsize=dsize,
        isize=isize,
        data=data,
        compr=comp,
        uid=uid,
        gid=gid,
        atime=atime,
        mtime=mtime,
        ctime=ctime,
        usercompr=usercompr,
        flags=flags,
    )


def decode_inode_head(buf: Buf, offset: int = 0) -> tuple[int, int, int, int, int, int, int]:
    """The mount-time view of an inode node's fixed part, checked by ``node_crc`` alone.

    Returns ``(ino, version, mode, isize, offset, dsize, totlen)``.  ``node_crc`` covers
    bytes 0..59, which include the magic, nodetype, totlen and ``hdr_crc``, so one CRC
    vouches for every field used here; the data CRC is checked when the data is read.
    """
    if len(buf) - offset < INODE_SIZE:
        raise NodeFormatError(f"inode header needs {INODE_SIZE} bytes", offset=offset)
    f = _INODE.unpack_from(buf, offset)
    if f[0] != MAGIC or f[1] | NODE_ACCURATE != NodeType.INODE:
        raise NodeFormatError(
            f"no inode node here (magic 0x{f[0]:04x}, type 0x{f[1]:04x})", offset=offset
        )
    if crc32(memoryview(buf)[offset : offset + INODE_SIZE - 8]) != f[20]:
        raise NodeCRCError("inode node_crc does not match", offset=offset)
    if INODE_SIZE + f[14] != f[2]:
        raise NodeFormatError(f"inode totlen {f[2]} but 68 + csize {f[14]}", offset=offset)
    return f[4], f[5], f[6], f[9], f[13], f[15], f[2]


def decode_dirent(buf: Buf, offset: int = 0) -> Dirent:
    """Decode and fully check a ``jffs2_raw_dirent`` at ``buf[offset:]``."""
    hdr = decode_header(buf, offset)
    if hdr.base_type != NodeType.DIRENT:
        raise NodeFormatError(
            f"expected a dirent node, found type 0x{hdr.nodetype:04x}", offset=offset
        )
    if hdr.totlen < DIRENT_SIZE or len(buf) - offset < hdr.totlen:
        raise NodeFormatError(
            f"dirent needs {max(hdr.totlen, DIRENT_SIZE)} bytes, have {len(buf) - offset}",
            offset=offset,
        )
    f = _DIRENT.unpack_from(buf, offset)
    pino, version, ino, mctime, nsize, dtype, _unused, node_crc, name_crc = f[4:13]
    check = crc32(memoryview(buf)[offset : offset + DIRENT_SIZE - 8])
    if check != node_crc:
        raise NodeCRCError(
            f"dirent node_crc 0x{node_crc:08x} but bytes give 0x{check:08x}", offset=offset
        )
    if DIRENT_SIZE + nsize != hdr.totlen or nsize == 0:
        raise NodeFormatError(
            f"dirent totlen {hdr.totlen} but 40 + nsize {nsize} = {DIRENT_SIZE + nsize}",
            offset=offset,
        )
    name = bytes(buf[offset + DIRENT_SIZE : offset + DIRENT_SIZE + nsize])
    ncheck = crc32(name)
    if ncheck != name_crc:
        raise NodeCRCError(
            f"dirent name_crc 0x{name_crc:08x} but name gives 0x{ncheck:08x}", offset=offset
        )
    return Dirent(pino=pino, version=version, ino=ino, name=name, type=dtype, mctime=mctime)


_new_sum_inode = tuple.__new__  # SumInode(...) without the keyword-handling wrapper


def _decode_entries(body: memoryview, count: int, offset: int) -> tuple[SumEntry, ...]:
    entries: list[SumEntry] = []
    pos = 0
    limit = len(body) - SUM_MARKER_SIZE
    for _ in range(count):
        if pos + 2 > limit:
            raise NodeFormatError("summary entries run into the marker", offset=offset)
        ntype = body[pos] | body[pos + 1] << 8
        if ntype | NODE_ACCURATE == NodeType.INODE:
            if pos + SUM_INODE_SIZE > limit:
                raise NodeFormatError("truncated summary inode entry", offset=offset)
            _t, ino, version, off, totlen = _SUM_INODE.unpack_from(body, pos)
            entries.append(_new_sum_inode(SumInode, (ino, version, off, totlen, ntype)))
            pos += SUM_INODE_SIZE
        elif ntype | NODE_ACCURATE == NodeType.DIRENT:
            if pos + SUM_DIRENT_SIZE > limit:
                raise NodeFormatError("truncated summary dirent entry", offset=offset)
            _t, totlen, off, pino, version, ino, nsize, dtype = _SUM_DIRENT.unpack_from(body, pos)
            start = pos + SUM_DIRENT_SIZE
            if start + nsize > limit:
                raise NodeFormatError("summary dirent name runs into the marker", offset=offset)
            name = bytes(body[start : start + nsize])
            entries.append(SumDirent(totlen, off, pino, version, ino, name, dtype, ntype))
            pos = start + nsize
        else:
            raise NodeFormatError(
                f"summary entry of type 0x{ntype:04x} is not supported (xattr/xref?)",
                offset=offset,
            )
    return tuple(entries)


def decode_summary(buf: Buf, offset: int = 0) -> Summary:
    """Decode and check a summary node at ``buf[offset:]`` spanning ``totlen`` bytes."""
    hdr = decode_header(buf, offset)
    if hdr.base_type != NodeType.SUMMARY:
        raise NodeFormatError(
            f"expected a summary node, found type 0x{hdr.nodetype:04x}", offset=offset
        )
    end = offset + hdr.totlen
    if hdr.totlen < SUMMARY_SIZE + SUM_MARKER_SIZE or len(buf) < end:
        raise NodeFormatError(
            f"summary totlen {hdr.totlen}, have {len(buf) - offset} bytes", offset=offset
        )
    f = _SUMMARY.unpack_from(buf, offset)
    sum_num, cln_mkr, padded, sum_crc, node_crc = f[4:9]
    check = crc32(memoryview(buf)[offset : offset + SUMMARY_SIZE - 8])
    if check != node_crc:
        raise NodeCRCError(
            f"summary node_crc 0x{node_crc:08x} but bytes give 0x{check:08x}", offset=offset
        )
    body = memoryview(buf)[offset + SUMMARY_SIZE : end]
    scheck = crc32(body)
    if scheck != sum_crc:
        raise NodeCRCError(
            f"summary sum_crc 0x{sum_crc:08x} but entries give 0x{scheck:08x}", offset=offset
        )
    moff, magic = _MARKER.unpack_from(body, len(body) - SUM_MARKER_SIZE)
    if magic != SUM_MAGIC:
        raise NodeFormatError(
            f"summary marker magic 0x{magic:08x}, expected 0x02851885", offset=offset
        )
    entries = _decode_entries(body, sum_num, offset)
    return Summary(entries=entries, totlen=hdr.totlen, offset=moff, cln_mkr=cln_mkr, padded=padded)


def decode_marker(tail: Buf) -> int | None:
    """Return the summary's offset from a block's last 8 bytes, or None without a marker."""
    if len(tail) < SUM_MARKER_SIZE:
        return None
    off, magic = _MARKER.unpack_from(tail, len(tail) - SUM_MARKER_SIZE)
    return off if magic == SUM_MAGIC else None


def decode(buf: Buf, offset: int = 0) -> Node:
    """Decode the node at ``buf[offset:]``, checking every CRC it carries.

    Raises :class:`NodeFormatError` (or :class:`NodeCRCError`) for anything that is not a
    complete, intact node; never any other exception.
    """
    hdr = decode_header(buf, offset)
    if len(buf) - offset < hdr.totlen:
        raise NodeFormatError(
            f"node of totlen {hdr.totlen} truncated to {len(buf) - offset} bytes", offset=offset
        )
    kind = hdr.base_type
    if kind == NodeType.INODE:
        return decode_inode(buf, offset)
    if kind == NodeType.DIRENT:
        return decode_dirent(buf, offset)
    if kind == NodeType.CLEANMARKER:
        if hdr.totlen != CLEANMARKER_SIZE:
            raise NodeFormatError(f"cleanmarker totlen {hdr.totlen}, expected 12", offset=offset)
        return Cleanmarker()
    if kind == NodeType.PADDING:
        return Padding(hdr.totlen)
    if kind == NodeType.SUMMARY:
        return decode_summary(buf, offset)
    return UnknownNode(
        hdr.nodetype, hdr.totlen, bytes(buf[offset + HEADER_SIZE : offset + hdr.totlen])
    )


def verify(buf: Buf) -> None:
    """Check every CRC of the one node that fills ``buf`` (what :func:`decode` checks),
    without building its record: garbage collection copies nodes verbatim and only needs
    to know they are intact.  Raises :class:`NodeFormatError` / :class:`NodeCRCError`."""
    hdr = decode_header(buf, 0)
    if hdr.base_type != NodeType.INODE or len(buf) < INODE_SIZE or len(buf) < hdr.totlen:
        decode(buf, 0)
        return
    f = _INODE.unpack_from(buf, 0)
    csize, data_crc, node_crc = f[14], f[19], f[20]
    view = memoryview(buf)
    if crc32(view[: INODE_SIZE - 8]) != node_crc:
        raise NodeCRCError(f"inode node_crc 0x{node_crc:08x} does not match", offset=0)
    if INODE_SIZE + csize != hdr.totlen:
        raise NodeFormatError(f"inode totlen {hdr.totlen} but csize {csize}", offset=0)
    if crc32(view[INODE_SIZE : INODE_SIZE + csize]) != data_crc:
        raise NodeCRCError(f"inode data_crc 0x{data_crc:08x} does not match", offset=0)
