"""Programming batches of nodes: one flash program per write head per request.

The kernel's write path reserves space once for a run of nodes and writes them with one
``mtd_writev`` (``jffs2_reserve_space`` + ``jffs2_flash_writev``); here the nodes of a
request are laid out back to back in one scratch buffer — each padded with 0xFF to whole
write units — and programmed into the write head with a single
:meth:`~swapio_flashlog.device.FlashDevice.program`.  When the head fills, the batch
continues in the next block (one program per block).  A power cut during the program
leaves a prefix: the nodes before the cut are complete (each is checked by its CRCs), the
one it hit is torn and ignored at mount, so each node — each page — reads back old or new.

The scratch buffer comes from the caller (the plugin allocates it from the area's page
pool, :mod:`swapio.pool`); a batch longer than the buffer is programmed in pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swapio_flashlog._index import NodeRef, RefKind
from swapio_flashlog._nodes import (
    CRC_PAIR,
    INODE_FIXED,
    INODE_SIZE,
    MAGIC,
    SUM_INODE,
    SUM_INODE_SIZE,
    SUM_MARKER_SIZE,
    SUMMARY_SIZE,
    Buf,
    Compression,
    NodeType,
    encode_entry,
    encode_sum_inode,
    hdr_crc,
    summary_span,
    zlib_crc32,
)
from swapio_flashlog._space import Head, Space
from swapio_flashlog.device import FlashDevice

Placed = Callable[[list["Pending"]], None]
PlacedRefs = Callable[[list[NodeRef]], None]
_ZEROS = bytes(1 << 16)
_CRC_OF_ZEROS: dict[int, int] = {}


def _linux_crc32(data: Buf) -> int:
    return zlib_crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def _zero_crc(n: int) -> int:
    value = _CRC_OF_ZEROS.get(n)
    if value is None:
        value = _CRC_OF_ZEROS[n] = _linux_crc32(bytes(n))
    return value


@dataclass(slots=True)
class Pending:
    """A node waiting to be programmed: its bytes (``parts``, ``totlen`` in all) and the
    reference the index will hold; ``origin`` is the node a GC copy replaces."""

    ref: NodeRef
    parts: tuple[Buf, ...]
    totlen: int
    origin: NodeRef | None = None


class Appender:
    """Lays batches of nodes out in scratch buffers and programs them into a write head."""

    def __init__(self, space: Space, device: FlashDevice) -> None:
        self.space = space
        self.device = device
        self.nodes_programmed = 0  # data/dirent nodes written, user and GC (not summaries)
        self._own = memoryview(bytearray(space.eb))

    def program(
        self, head: Head, items: Sequence[Pending], scratch: memoryview | None, placed: Placed
    ) -> None:
        """Program ``items`` in order at ``head``; ``placed`` is called with each run of
        items right after it reached flash (so the index never points past the flash)."""
        space = self.space
        unit = space.align
        buf = self._own if scratch is None else scratch
        room = len(buf)
        summaries = space.options.summaries
        eb = space.eb
        i, n = 0, len(items)
        while i < n:
            first = items[i]
            blk = space.head(head, -(-first.totlen // unit) * unit, _entry_size(first.ref))
            base = blk.pos
            pos = 0
            run: list[Pending] = []
            entries = bytearray()
            summarised = blk.sum_ok
            alone = False
            while i < n:
                item = items[i]
                length = -(-item.totlen // unit) * unit
                esize = _entry_size(item.ref)
                if run:
                    tail = 0
                    if summaries and summarised:
                        tail = summary_span(blk.sum_size + len(entries) + esize)
                    if base + pos + length + tail > eb or pos + length > room:
                        break
                if length > room:  # a node larger than the scratch buffer: its own bytes
                    alone = True
                    raw = b"".join(bytes(p) for p in item.parts)
                    self.device.program(blk.start + base, raw + b"\xff" * (length - len(raw)))
                else:
                    at = pos
                    for part in item.parts:
                        end = at + len(part)
                        buf[at:end] = part
                        at = end
                    if length > item.totlen:
                        buf[at : pos + length] = b"\xff" * (pos + length - at)
                entries += _place(item.ref, blk.index, blk.start, blk.start + base + pos, length)
                summarised = summarised and esize > 0
                run.append(item)
                pos += length
                i += 1
                if alone:
                    break
            if not alone:
                self.device.program(blk.start + base, buf[:pos])
            space.placed(blk, [p.ref for p in run], pos, bytes(entries), summarised)
            self.nodes_programmed += len(run)
            placed(run)

    def program_pages(
        self,
        head: Head,
        inode: tuple[int, int, int, int, int],
        offsets: Sequence[int],
        pages: Sequence[memoryview],
        scratch: memoryview | None,
        placed: PlacedRefs,
    ) -> None:
        """The data path of :meth:`program`: one ``jffs2_raw_inode`` per page (at file
        offset ``offsets[i]``), encoded straight into the scratch buffer (``inode`` is ino,
        first version, mode, isize and time; the versions count up from the first); an
        all-zero page is a ``JFFS2_COMPR_ZERO`` node."""
        ino, version, mode, isize, now = inode
        space = self.space
        unit = space.align
        buf = self._own if scratch is None else scratch
        room = len(buf)
        summaries = space.options.summaries
        eb = space.eb
        crcs = [_linux_crc32(p) for p in pages]
        pack_head, pack_crcs, pack_entry = INODE_FIXED.pack_into, CRC_PAIR.pack_into, SUM_INODE.pack
        crc = zlib_crc32
        inode_type = NodeType.INODE
        fixed_end = INODE_SIZE - 8
        new_ref = NodeRef
        kind = RefKind.INODE
        i, n = 0, len(pages)
        while i < n:
            blk = space.head(head, -(-(INODE_SIZE + len(pages[i])) // unit) * unit, SUM_INODE_SIZE)
            base = blk.pos
            start = blk.start + base
            index = blk.index
            pos = 0
            refs: list[NodeRef] = []
            entries = bytearray()
            # room left for nodes and their summary entries: the summary's fixed part and
            # marker come off the top (summary_span, inlined per node below)
            sum_base = SUMMARY_SIZE + blk.sum_size + SUM_MARKER_SIZE + 3
            tail_wanted = summaries and blk.sum_ok
            limit = eb - base
            while i < n:
                page = pages[i]
                foff = offsets[i]
                dsize = len(page)
                data_crc = crcs[i]
                zero = data_crc == _zero_crc(dsize) and page == _ZEROS[:dsize]
                csize = 0 if zero else dsize
                totlen = INODE_SIZE + csize
                length = -(-totlen // unit) * unit
                if refs:
                    tail = (sum_base + len(entries) + SUM_INODE_SIZE) & ~3 if tail_wanted else 0
                    if pos + length + tail > limit or pos + length > room:
                        break
                elif length > room:
                    raise ValueError(f"scratch buffer of {room} bytes holds no {length}-byte node")
                # jffs2_raw_inode: header and fixed fields, node_crc over bytes 0..59
                pack_head(
                    buf, pos, MAGIC, inode_type, totlen, hdr_crc(inode_type, totlen), ino,
                    version, mode, 0, 0, isize, now, now, now, foff, csize, dsize,
                    Compression.ZERO if zero else Compression.NONE, 0, 0,
                )  # fmt: skip
                node_crc = crc(buf[pos : pos + fixed_end], 0xFFFFFFFF) ^ 0xFFFFFFFF
                pack_crcs(buf, pos + fixed_end, 0 if zero else data_crc, node_crc)
                end = pos + totlen
                if not zero:
                    buf[pos + INODE_SIZE : end] = page
                if length > totlen:
                    buf[end : pos + length] = b"\xff" * (length - totlen)
                entries += pack_entry(inode_type, ino, version, base + pos, totlen)
                refs.append(
                    new_ref(kind, start + pos, totlen, length, index, ino, version, foff, dsize)
                )
                pos += length
                version += 1
                i += 1
            self.device.program(start, buf[:pos])
            space.placed(blk, refs, pos, bytes(entries), True)
            self.nodes_programmed += len(refs)
            placed(refs)


def _place(ref: NodeRef, block: int, block_start: int, offset: int, length: int) -> bytes:
    """Place ``ref`` at ``offset``; return its summary entry (empty if it has none)."""
    ref.offset = offset
    ref.length = length
    ref.block = block
    if ref.kind is RefKind.INODE:
        return encode_sum_inode(ref.ino, ref.version, offset - block_start, ref.totlen)
    entry = ref.summary_entry(block_start)
    return b"" if entry is None else encode_entry(entry)


def _entry_size(ref: NodeRef) -> int:
    """Bytes of ``ref``'s summary entry (0: summaries cannot describe it)."""
    if ref.kind is RefKind.INODE:
        return SUM_INODE_SIZE
    entry = ref.summary_entry(0)
    return 0 if entry is None else entry.size
