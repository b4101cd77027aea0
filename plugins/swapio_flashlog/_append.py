"""Programming batches of nodes: one flash program per write head per request.

The kernel's write path reserves space once for a run of nodes and writes them with one
``mtd_writev`` (``jffs2_reserve_space`` + ``jffs2_flash_writev``); here too a run of nodes
goes into the write head with one program, each node padded with 0xFF to whole write units.
Data nodes (:meth:`Appender.program_pages`): the run's headers are built in the scratch
buffer (:mod:`swapio_flashlog._columns`) and programmed together with the caller's pages
by :meth:`~swapio_flashlog.device.FlashDevice.program_parts` (one ``pwritev``, the pages
not copied); when the batch continues past the block, the block's summary node is the
tail of that program.  Other nodes (:meth:`Appender.program`: dirents, holes, GC copies)
are laid out back to back in the scratch buffer and programmed from it.  When the head
fills, the batch continues in the next block (one program per block).  A power cut during
the program leaves a prefix: the nodes before the cut are complete (each is checked by its
CRCs), the one it hit (or the summary) is torn and ignored at mount, so each node — each
page — reads back old or new.

The scratch buffer comes from the caller (the plugin allocates it from the area's page
pool, :mod:`swapio.pool`); a batch longer than the buffer is programmed in pieces.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import add

from swapio_flashlog._columns import Batch
from swapio_flashlog._index import NodeRef, RefKind
from swapio_flashlog._nodes import (
    INODE_SIZE,
    SUM_INODE,
    SUM_INODE_SIZE,
    Buf,
    NodeType,
    encode_entry,
    encode_sum_inode,
    summary_span,
)
from swapio_flashlog._space import Head, Space
from swapio_flashlog.device import FlashDevice

Placed = Callable[[list["Pending"]], None]
PlacedRefs = Callable[[list[NodeRef]], None]
#: 0xFF fill after a node, to whole write units (any unit up to 64 KiB).
_FILL = memoryview(b"\xff" * (1 << 16))


@dataclass(slots=True)
class Pending:
    """A node waiting to be programmed: its bytes (``parts``, ``totlen`` in all) and the
    reference the index will hold."""

    ref: NodeRef
    parts: tuple[Buf, ...]
    totlen: int


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
        self, head: Head, batch: Batch, scratch: memoryview | None, placed: PlacedRefs
    ) -> None:
        """The data path of :meth:`program`: one ``jffs2_raw_inode`` per page of ``batch``.

        Per write-head block, one program (``mtd_writev``): the run's headers are laid out
        in the scratch buffer column-wise (:mod:`swapio_flashlog._columns`) and programmed
        with the pages themselves (one ``pwritev``, no copy of the data).  When the batch
        goes on past a block, the block's summary is the tail of that same program, so a
        full block costs one program, not two.
        """
        space = self.space
        buf = self._own if scratch is None else scratch
        max_run = len(buf) // INODE_SIZE
        if max_run == 0:
            raise ValueError(f"scratch buffer of {len(buf)} bytes holds no node header")
        eb = space.eb
        summaries = space.options.summaries
        cum = batch.cumulative()
        lengths, totlens, data = batch.lengths, batch.totlens, batch.data
        plain = batch.uniform and batch.pads[0] == 0
        version, ino = batch.version, batch.ino
        kind = RefKind.INODE
        i, n = 0, batch.n
        while i < n:
            blk = space.head(head, lengths[i], SUM_INODE_SIZE)
            base = blk.pos
            room = eb - base
            sum_size = blk.sum_size if summaries and blk.sum_ok else -1

            k = min(_fit(cum, i, room, sum_size), max_run)
            end = i + k
            where = list(map(add, cum[i:end], repeat(base - cum[i], k)))
            entries = batch.entries(i, k, where)
            headers = batch.headers(buf, i, k)
            if plain:
                parts = list(chain.from_iterable(zip(headers, data[i:end], strict=True)))
            else:
                fill = map(_FILL.__getitem__, map(slice, batch.pads[i:end]))
                nodes = zip(headers, data[i:end], fill, strict=True)
                parts = list(filter(None, chain.from_iterable(nodes)))
            nbytes = cum[end] - cum[i]
            # the next node does not fit: close the block with this program
            closing = end < n and base + nbytes + lengths[end] + _tail(sum_size, k + 1) > eb
            summary = space.summary_after(blk, entries, k, base + nbytes) if closing else None
            if summary is not None:
                parts.append(summary)
            start = blk.start
            self.device.program_parts(start + base, parts)
            refs = list(
                map(
                    NodeRef,
                    repeat(kind, k),
                    map(add, where, repeat(start, k)),
                    totlens[i:end],
                    lengths[i:end],
                    repeat(blk.index, k),
                    repeat(ino, k),
                    range(version + i, version + end),
                    batch.offsets[i:end],
                    batch.dsizes[i:end],
                )
            )
            space.placed(blk, refs, nbytes, entries, True)
            if closing:
                space.closed(blk, summary is not None)
            self.nodes_programmed += k
            placed(refs)
            i = end

    def copy_nodes(
        self, head: Head, refs: Sequence[NodeRef], span: memoryview, at: Sequence[int]
    ) -> None:
        """Program verbatim copies of the nodes ``refs`` (garbage collection), their bytes
        ``span[at[i] : at[i] + totlen]``, at ``head``, in order; then point each reference
        at its copy (the same object: the index needs no update).

        One program per write-head block, a ``pwritev`` of slices of ``span`` (nothing is
        copied in user space), each node followed by 0xFF to whole write units, exactly the
        bytes :meth:`program` would lay out.  A reference is moved only after its copy
        reached flash, so the index never points at bytes not yet programmed.
        """
        unit = self.space.align
        totlens = [ref.totlen for ref in refs]
        lengths = [-(-t // unit) * unit for t in totlens]
        if all(ref.kind is RefKind.INODE for ref in refs):
            self._copy_inodes(head, refs, span, at, totlens, lengths)
            return
        space = self.space
        unit = space.align
        summaries = space.options.summaries
        eb = space.eb
        blocks = space.blocks
        i, n = 0, len(refs)
        while i < n:
            ref = refs[i]
            blk = space.head(head, -(-ref.totlen // unit) * unit, _entry_size(ref))
            base = blk.start + blk.pos
            pos = 0
            parts: list[Buf] = []
            entries = bytearray()
            summarised = blk.sum_ok
            where: list[tuple[int, int]] = []
            first = i
            while i < n:
                ref = refs[i]
                totlen = ref.totlen
                length = -(-totlen // unit) * unit
                esize = _entry_size(ref)
                if i > first:
                    tail = 0
                    if summaries and summarised:
                        tail = summary_span(blk.sum_size + len(entries) + esize)
                    if blk.pos + pos + length + tail > eb:
                        break
                parts.append(span[at[i] : at[i] + totlen])
                if length > totlen:
                    parts.append(_FILL[: length - totlen])
                entries += _entry_at(ref, base + pos - blk.start)
                summarised = summarised and esize > 0
                where.append((base + pos, length))
                pos += length
                i += 1
            self.device.program_parts(base, parts)
            run = refs[first:i]
            index = blk.index
            for ref, (offset, length) in zip(run, where, strict=True):
                blocks[ref.block].live -= ref.length
                ref.offset = offset
                ref.length = length
                ref.block = index
                ref.poisoned = False  # a pin stays with the original's block
            space.placed(blk, list(run), pos, bytes(entries), summarised)
            self.nodes_programmed += len(run)

    def _copy_inodes(
        self,
        head: Head,
        refs: Sequence[NodeRef],
        span: memoryview,
        at: Sequence[int],
        totlens: list[int],
        lengths: list[int],
    ) -> None:
        """:meth:`copy_nodes` for data nodes only (the usual victim): each block's run found
        from the cumulative lengths, its summary entries packed by one ``map``."""
        space = self.space
        summaries = space.options.summaries
        eb = space.eb
        blocks = space.blocks
        cum = list(accumulate(lengths, initial=0))
        ends = list(map(add, at, totlens))
        pads = [ln - t for ln, t in zip(lengths, totlens, strict=True)]
        i, n = 0, len(refs)
        while i < n:
            blk = space.head(head, lengths[i], SUM_INODE_SIZE)
            sum_size = blk.sum_size if summaries and blk.sum_ok else -1
            k = _fit(cum, i, eb - blk.pos, sum_size)
            end = i + k
            run = list(refs[i:end])
            start = blk.start
            base = blk.pos - cum[i]
            where = list(map(add, cum[i:end], repeat(base, k)))  # offsets in the block
            entries = b"".join(
                map(
                    SUM_INODE.pack,
                    repeat(NodeType.INODE, k),
                    [ref.ino for ref in run],
                    [ref.version for ref in run],
                    where,
                    totlens[i:end],
                )
            )
            nodes = map(span.__getitem__, map(slice, at[i:end], ends[i:end]))
            if pads.count(0) == n:
                parts: list[Buf] = list(nodes)
            else:
                fill = map(_FILL.__getitem__, map(slice, pads[i:end]))
                parts = list(filter(None, chain.from_iterable(zip(nodes, fill, strict=True))))
            self.device.program_parts(start + where[0], parts)
            index = blk.index
            for ref, offset, length in zip(run, where, lengths[i:end], strict=True):
                blocks[ref.block].live -= ref.length
                ref.offset = start + offset
                ref.length = length
                ref.block = index
                ref.poisoned = False  # a pin stays with the original's block
            space.placed(blk, run, cum[end] - cum[i], entries, True)
            self.nodes_programmed += k
            i = end


def _tail(sum_size: int, k: int) -> int:
    """Bytes of a block's summary once ``k`` more data nodes are in it (``sum_size`` bytes of
    entries so far; -1: the block gets no summary)."""
    return 0 if sum_size < 0 else summary_span(sum_size + k * SUM_INODE_SIZE)


def _fit(cum: Sequence[int], i: int, room: int, sum_size: int) -> int:
    """How many data nodes from ``i`` (``cum``: cumulative lengths) fit in ``room`` bytes
    with their summary entries; at least one (the write head was chosen to hold it)."""
    n = len(cum) - 1
    k = max(1, bisect_right(cum, cum[i] + room - _tail(sum_size, n - i), i) - 1 - i)
    while i + k < n and cum[i + k + 1] - cum[i] + _tail(sum_size, k + 1) <= room:
        k += 1
    return k


def _place(ref: NodeRef, block: int, block_start: int, offset: int, length: int) -> bytes:
    """Place ``ref`` at ``offset``; return its summary entry (empty if it has none)."""
    ref.offset = offset
    ref.length = length
    ref.block = block
    if ref.kind is RefKind.INODE:
        return encode_sum_inode(ref.ino, ref.version, offset - block_start, ref.totlen)
    entry = ref.summary_entry(block_start)
    return b"" if entry is None else encode_entry(entry)


def _entry_at(ref: NodeRef, where: int) -> bytes:
    """``ref``'s summary entry were it at block offset ``where`` (empty if it has none)."""
    if ref.kind is RefKind.INODE:
        return encode_sum_inode(ref.ino, ref.version, where, ref.totlen)
    entry = ref.summary_entry(ref.offset - where)
    return b"" if entry is None else encode_entry(entry)


def _entry_size(ref: NodeRef) -> int:
    """Bytes of ``ref``'s summary entry (0: summaries cannot describe it)."""
    if ref.kind is RefKind.INODE:
        return SUM_INODE_SIZE
    entry = ref.summary_entry(0)
    return 0 if entry is None else entry.size
