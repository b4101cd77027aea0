"""The log: files of JFFS2 nodes on a flash device — create, write, discard, read.

* **Write**: a request's pages become ``jffs2_raw_inode`` nodes with the file's next
  versions, programmed as one batch at the user write head
  (:mod:`swapio_flashlog._append`).  A page of up to 4 KiB is one node; a larger page is
  one node too while it fits an erase block, so it reads back whole — old or new — after a
  power cut (a page too large for that is split at 4 KiB and only each 4 KiB part is
  atomic).  An all-zero page becomes a ``JFFS2_COMPR_ZERO`` node, as does a discard, so a
  discarded slot can never fall back to older data.
* **Read**: the newest node of each 4 KiB chunk, every CRC checked; a damaged newest node
  is an error, never a silent fall-back to an older version.
* The parts, each in its own module: mount and recovery (:mod:`._mount`), the index
  (:mod:`._index`), erase-block space and the write heads (:mod:`._space`), batched
  programming (:mod:`._append`), garbage collection (:mod:`._gc`, :mod:`._victim`), the
  inspect report (:mod:`._report`), names and sizes (:mod:`._files`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import chain, islice, repeat
from operator import and_, attrgetter

from swapio.errors import AreaExistsError, AreaNotFoundError
from swapio_flashlog._append import Appender, Pending
from swapio_flashlog._blocks import (
    CHUNK_COST,
    Block,
    BlockState,
    LogOptions,
    LogReport,
    align,
)
from swapio_flashlog._columns import Batch
from swapio_flashlog._compress import decompress
from swapio_flashlog._detect import detect_erase_block
from swapio_flashlog._files import (
    capacity_chunks,
    check_file_size,
    fit_error,
    new_file_name,
    parts,
)
from swapio_flashlog._gc import Collector
from swapio_flashlog._index import DirentIndex, FileState, NodeRef, RefKind
from swapio_flashlog._mount import Mounter
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    INODE_SIZE,
    JFFS2_PAGE,
    SUM_INODE_SIZE,
    Buf,
    Compression,
    Dirent,
    DirentType,
    decode_inode,
    decode_inode_head,
    encode_cleanmarker,
    encode_dirent,
    inode_header,
    summary_span,
)
from swapio_flashlog._report import build_report
from swapio_flashlog._space import Space
from swapio_flashlog.device import FlashDevice, Geometry, remove_image
from swapio_flashlog.errors import DataIntegrityError, ImageFormatError, NodeFormatError

ROOT_INO = 1
FILE_MODE = 0o100600
__all__ = [
    "CHUNK_COST",
    "BlockState",
    "FlashLog",
    "LogOptions",
    "LogReport",
    "capacity_chunks",
    "check_file_size",
    "fit_error",
    "new_file_name",
]

_ZERO_PAGE = bytes(JFFS2_PAGE)
_FORMAT = attrgetter("format")
_view: Callable[[Buf], memoryview] = memoryview


class FlashLog:
    """A mounted JFFS2 log.  Blocking; owned by one thread at a time."""

    def __init__(self, device: FlashDevice, options: LogOptions | None = None) -> None:
        self.device = device
        self.options = options or LogOptions()
        self.geometry = device.geometry
        self.space = Space(device, self.options, bool(self.options.cleanmarkers))
        self.blocks = self.space.blocks
        self.eb = self.space.eb
        self.files: dict[int, FileState] = {}
        self.dirents = DirentIndex()
        self.other_live = 0
        self.mount_seconds = 0.0
        self.mounted_rw = False
        self.unbuilt = False
        self.appender = Appender(self.space, device)
        self.collector = Collector(
            self.space, self.appender, self.files, self.dirents, self.options, self.build_index
        )
        self.space.reclaim = self.collector.step
        # largest data node that still fits an empty erase block with its summary
        self._max_node = (
            self.eb
            - align(CLEANMARKER_SIZE, self.space.align)
            - summary_span(SUM_INODE_SIZE)
            - self.space.align
        )

    # --- construction ---------------------------------------------------------------

    @classmethod
    def format(
        cls,
        path: str,
        geometry: Geometry,
        options: LogOptions | None = None,
        bad_blocks: tuple[int, ...] = (),
    ) -> FlashLog:
        """Create an image, erase every block (cleanmarkers unless disabled), mount it."""
        options = options or LogOptions()
        cleanmarkers = True if options.cleanmarkers is None else options.cleanmarkers
        device = FlashDevice.format(path, geometry, bad_blocks, publish=False)
        try:
            if cleanmarkers:
                marker = encode_cleanmarker() + b"\xff" * (-CLEANMARKER_SIZE % geometry.write_unit)
                for b in range(geometry.blocks):
                    if not device.is_bad(b):
                        device.program(b * geometry.erase_block, marker)
            log = cls(device, _replace_cm(options, cleanmarkers))
            log.mount()
            for blk in log.blocks:  # every block was written as 0xFF a moment ago
                blk.blank = blk.state is BlockState.FREE
            device.publish()  # only a complete, mounted image gets the name asked for
        except BaseException:
            remove_image(device.path)  # still locked: nobody else has seen the new image
            device.close()
            raise
        return log

    @classmethod
    def open(
        cls,
        path: str,
        geometry: Geometry | None = None,
        options: LogOptions | None = None,
        *,
        readonly: bool = False,
    ) -> FlashLog:
        device = FlashDevice.open(path, geometry, readonly=readonly, detect=detect_erase_block)
        try:
            log = cls(device, options)
            log.mount(readonly=readonly)
        except BaseException:
            device.close()
            raise
        return log

    def close(self) -> None:
        """Flush and close.  The write heads stay open: the next mount scans those (at most
        two) blocks in full and appends to them again, so unmounting wastes no space."""
        if self.mounted_rw and not self.device.dead:
            self.device.flush()
        self.device.close()
        # The space's GC hook and the collector's index hook point back at the collector and
        # the log: unhooked, a closed log (and every node reference of its index) is freed
        # at once, instead of waiting as garbage for Python's cyclic GC, whose full passes
        # then walk it during the next area's I/O.
        self.space.reclaim = _nothing_to_reclaim
        self.collector.build_index = _built

    def mount(self, *, readonly: bool = False) -> None:
        """Build the in-memory view from flash; recover from a power cut when writable."""
        Mounter(self).mount(readonly=readonly)

    def _recover(self) -> None:
        """After a power cut: erase interrupted erases, move data out of torn blocks."""
        Mounter(self).recover()

    @property
    def cleanmarkers(self) -> bool:
        return self.space.cleanmarkers

    @property
    def heads(self) -> dict[str, Block]:
        return self.space.heads

    @property
    def nodes_programmed(self) -> int:
        """Data/dirent nodes written, user and GC (not summaries)."""
        return self.appender.nodes_programmed

    @property
    def gc_steps(self) -> int:
        return self.collector.steps

    # --- the index ----------------------------------------------------------------------

    def adopt(self, blk: Block, ref: NodeRef, mode: int = 0, isize: int = 0) -> None:
        """Count a node found at mount in its block and in the index."""
        blk.nodes.append(ref)
        blk.used += ref.length
        blk.live += ref.length
        if ref.kind is RefKind.INODE:
            self.file_state(ref.ino).defer(ref, mode, isize)
            self.unbuilt = True
        elif ref.kind is RefKind.DIRENT:
            self.dirents.add(ref, self.obsolete)
        else:
            ref.refs = 1
            self.other_live += ref.length

    def ready(self, ino: int) -> FileState:
        """The file's state with every node found at mount placed in its index."""
        state = self.files[ino]
        if state.pending:
            state.build(self.obsolete, self._load_head)
        return state

    def _load_head(self, ref: NodeRef) -> tuple[int, int]:
        """Read the header of a node known from a summary: its range, mode and size."""
        try:
            ino, version, mode, isize, foff, dsize, totlen = decode_inode_head(
                self.device.read(ref.offset, INODE_SIZE)
            )
            if (ino, version, totlen) != (ref.ino, ref.version, ref.totlen):
                raise NodeFormatError(
                    f"summary lists inode {ref.ino} version {ref.version} ({ref.totlen} B), "
                    f"the node says inode {ino} version {version} ({totlen} B)",
                    offset=ref.offset,
                )
        except NodeFormatError as exc:
            raise ImageFormatError(
                f"{self.device.path}: node at 0x{ref.offset:08x} listed in its erase block's "
                f"summary is damaged ({exc}); not using the image"
            ) from None
        ref.foff = foff
        ref.dsize = dsize
        return mode, isize

    def build_index(self) -> None:
        """Place all nodes found at mount (needed before anything is written or moved:
        obsolescence, hence GC's view of live space, depends on it)."""
        if self.unbuilt:
            for state in self.files.values():
                if state.pending:
                    state.build(self.obsolete, self._load_head)
            self.unbuilt = False

    def file_state(self, ino: int) -> FileState:
        """The state of inode ``ino``, created empty if no node named it yet."""
        state = self.files.get(ino)
        if state is None:
            state = self.files[ino] = FileState(ino)
        return state

    def obsolete(self, ref: NodeRef) -> None:
        """A node is no longer visible anywhere: its bytes are dirt in its block."""
        blk = self.blocks[ref.block]
        blk.live -= ref.length
        if ref.poisoned:
            blk.pinned -= 1
            ref.poisoned = False
        if blk.state is BlockState.FULL:
            self.space.victims.note(blk)

    # --- files ------------------------------------------------------------------------

    def lookup(self, path: str) -> int:
        """Inode number of ``path`` (``/a/b``), following dirents from the root."""
        ino = ROOT_INO
        for part in parts(path):
            found = self.dirents.lookup(ino, part)
            if found is None:
                raise AreaNotFoundError(f"{self.device.path}: no file {path!r} in the image")
            ino = found
        return ino

    def file(self, ino: int) -> FileState:
        """The state of inode ``ino``, its index built."""
        if ino not in self.files:
            raise ImageFormatError(f"{self.device.path}: inode {ino} has a name but no nodes")
        return self.ready(ino)

    def capacity_chunks(self, page_size: int = JFFS2_PAGE) -> int:
        """4 KiB chunks the log can keep live while GC still makes progress, when data is
        written in nodes of ``min(page_size, 4096)`` bytes (smaller pages, more headers)."""
        good = sum(1 for b in self.blocks if b.state is not BlockState.BAD)
        return capacity_chunks(self.eb, good, self.options.reserve_blocks, page_size)

    def committed_chunks(self) -> int:
        """Chunks the files in the image may grow to (their sizes), plus other live data."""
        total = sum((f.isize + JFFS2_PAGE - 1) // JFFS2_PAGE for f in self.files.values())
        return total + (self.other_live + CHUNK_COST - 1) // CHUNK_COST

    def create_file(self, path: str, size: int, page_size: int = JFFS2_PAGE) -> int:
        """Create a regular file of ``size`` bytes (one hole node), then its dirent.

        ``page_size`` is the unit it will be written in: it decides how many node headers
        the file's data needs, hence whether it fits (see :meth:`capacity_chunks`).
        """
        name = new_file_name(path)  # everything is checked before anything is written
        parent = ROOT_INO
        if self.dirents.lookup(parent, name) is not None:
            raise AreaExistsError(f"{self.device.path}: {path!r} already exists in the image")
        check_file_size(size)
        need = self.committed_chunks() + (size + JFFS2_PAGE - 1) // JFFS2_PAGE
        capacity = self.capacity_chunks(page_size)
        if need > capacity:
            raise fit_error(
                self.device.path, size, need, capacity, page_size, self.options.reserve_blocks
            )
        self.build_index()
        ino = max([ROOT_INO, *self.files]) + 1
        state = self.file_state(ino)
        now = int(time.time()) & 0xFFFFFFFF
        hole = self._hole_node(ino, 1, FILE_MODE, size, 0, size, now)
        version = self.dirents.highest.get(parent, 0) + 1
        dirent = Dirent(parent, version, ino, name, DirentType.REG, now)
        raw = encode_dirent(dirent)
        ref = NodeRef(RefKind.DIRENT, 0, len(raw), 0, 0, ino, version, dirent=dirent)

        def placed(run: list[Pending]) -> None:
            for item in run:
                if item.ref.kind is RefKind.DIRENT:
                    self.dirents.add(item.ref, self.obsolete)
                else:
                    state.add(item.ref, FILE_MODE, size, self.obsolete)

        self.appender.program("user", [hole, Pending(ref, (raw,), len(raw))], None, placed)
        self._synced()
        return ino

    # --- data path --------------------------------------------------------------------

    def write(
        self,
        ino: int,
        offset: int,
        data: Buf,
        scratch: memoryview | None = None,
    ) -> None:
        """Append data nodes for ``data`` at file ``offset``, split at 4 KiB pages."""
        view = memoryview(data).cast("B")
        pieces = []
        pos = 0
        while pos < len(view):
            n = min(len(view) - pos, JFFS2_PAGE - (offset + pos) % JFFS2_PAGE)
            pieces.append(view[pos : pos + n])
            pos += n
        self.write_pages(ino, offset, pieces, scratch)

    def write_pages(
        self,
        ino: int,
        offset: int,
        pages: Sequence[Buf],
        scratch: memoryview | None = None,
    ) -> None:
        """Write consecutive ``pages`` from file ``offset``: one node per page (a page too
        large for one node: one per 4 KiB), all programmed as one batch.  ``scratch`` is
        the buffer the batch is laid out in (at least one node; default: the log's own)."""
        self.write_many(ino, [(offset, pages)], scratch)

    def write_many(
        self,
        ino: int,
        requests: Sequence[tuple[int, Sequence[Buf]]],
        scratch: memoryview | None = None,
    ) -> None:
        """:meth:`write_pages` for several requests (file offset, pages) at once: their
        nodes go out together, in order, one program per write-head block."""
        self.build_index()
        state = self.files[ino]
        now = int(time.time()) & 0xFFFFFFFF
        mode = state.mode or FILE_MODE
        isize = state.isize
        offsets, nodes, sizes = self._runs(requests)
        inode = (ino, state.highest_version + 1, mode, isize, now)
        batch = Batch(inode, offsets, nodes, sizes, self.space.align)
        # every node one whole, aligned 4 KiB page (swap pages of 4 KiB): the run fast path
        low = repeat(JFFS2_PAGE - 1, len(offsets))  # offset bits below a page
        whole = bool(sizes) and batch.uniform and sizes[0] == JFFS2_PAGE
        whole = whole and not any(map(and_, offsets, low))
        add = state.add_pages if whole else state.add_all

        def placed(refs: list[NodeRef]) -> None:
            add(refs, mode, isize, self.obsolete)

        self.appender.program_pages("user", batch, scratch, placed)
        self.device.add_host_bytes(sum(sizes))
        self._synced()

    def _runs(
        self, requests: Sequence[tuple[int, Sequence[Buf]]]
    ) -> tuple[list[int], list[memoryview], list[int]]:
        """The nodes of ``requests``: their file offsets, bytes and sizes.  A page is one
        node (a page too large for one: one per 4 KiB, each atomic on its own).  When every
        page has the same size and fits one node (swap pages), without a loop per page."""
        firsts = [first for first, _ in requests]
        counts = [len(pages) for _, pages in requests]
        nodes: list[memoryview] = list(map(_view, chain.from_iterable(p for _, p in requests)))
        if set(map(_FORMAT, nodes)) != {"B"}:
            nodes = [v.cast("B") for v in nodes]
        sizes = list(map(len, nodes))
        size = sizes[0] if sizes else 0
        if sizes.count(size) == len(sizes) and INODE_SIZE + size <= self._max_node:
            if counts.count(1) == len(counts):
                return firsts, nodes, sizes
            ends = [first + size * count for first, count in zip(firsts, counts, strict=True)]
            return list(chain.from_iterable(map(range, firsts, ends, repeat(size)))), nodes, sizes
        offsets: list[int] = []
        pieces: list[memoryview] = []
        it = iter(nodes)
        for first, count in zip(firsts, counts, strict=True):
            foff = first
            for view in islice(it, count):
                size = len(view)
                if INODE_SIZE + size <= self._max_node:
                    pieces.append(view)
                    offsets.append(foff)
                else:  # too large for one node: 4 KiB nodes (each atomic on its own)
                    for at in range(0, size, JFFS2_PAGE):
                        pieces.append(view[at : at + JFFS2_PAGE])
                        offsets.append(foff + at)
                foff += size
        return offsets, pieces, list(map(len, pieces))

    def discard(
        self, ino: int, offset: int, length: int, scratch: memoryview | None = None
    ) -> None:
        """Record that a range reads as zeros from now on: one ``JFFS2_COMPR_ZERO`` node."""
        self.build_index()
        state = self.files[ino]
        mode = state.mode or FILE_MODE
        isize = state.isize
        hole = self._hole_node(ino, state.highest_version + 1, mode, isize, offset, length, 0)

        def placed(run: list[Pending]) -> None:
            for item in run:
                state.add(item.ref, mode, isize, self.obsolete)

        self.appender.program("user", [hole], scratch, placed)
        self._synced()

    @staticmethod
    def _hole_node(
        ino: int, version: int, mode: int, isize: int, foff: int, dsize: int, now: int
    ) -> Pending:
        """A ``JFFS2_COMPR_ZERO`` node: ``dsize`` bytes of zeros at ``foff``, no payload."""
        head = inode_header(ino, version, mode, isize, foff, dsize, 0, Compression.ZERO, 0, now)
        ref = NodeRef(RefKind.INODE, 0, INODE_SIZE, 0, 0, ino, version, foff, dsize)
        return Pending(ref, (head,), INODE_SIZE)

    def read(self, ino: int, offset: int, out: memoryview) -> None:
        """Fill ``out`` from file ``offset``; raise rather than return a stale version."""
        state = self.ready(ino)
        pos = 0
        n = len(out)
        while pos < n:
            foff = offset + pos
            chunk = foff // JFFS2_PAGE
            lo = chunk * JFFS2_PAGE
            take = min(n - pos, lo + JFFS2_PAGE - foff)
            data = self._chunk(state, chunk)
            out[pos : pos + take] = data[foff - lo : foff - lo + take]
            pos += take

    def _chunk(self, state: FileState, chunk: int) -> bytes | bytearray:
        frags = state.chunks.get(chunk)
        lo = chunk * JFFS2_PAGE
        if not frags:
            return _ZERO_PAGE
        if (
            len(frags) == 1
            and frags[0].foff <= lo
            and frags[0].foff + frags[0].dsize >= lo + JFFS2_PAGE
        ):
            data = self._node_data(frags[0], lo, JFFS2_PAGE)
            return _ZERO_PAGE if data is None else data
        buf = bytearray(JFFS2_PAGE)
        for frag in frags:
            a = max(frag.foff, lo)
            b = min(frag.foff + frag.dsize, lo + JFFS2_PAGE)
            data = self._node_data(frag, a, b - a)
            buf[a - lo : b - lo] = bytes(b - a) if data is None else data
        return buf

    def _node_data(self, ref: NodeRef, start: int, length: int) -> bytes | None:
        """``length`` bytes of file data from ``start`` out of node ``ref``; None = zeros."""
        try:
            node = decode_inode(self.device.read(ref.offset, ref.totlen))  # every CRC
            if (node.ino, node.version, node.offset, node.dsize) != (
                ref.ino,
                ref.version,
                ref.foff,
                ref.dsize,
            ):
                raise NodeFormatError("node header no longer matches the index", offset=ref.offset)
            if node.compr == Compression.ZERO:
                return None
            data = decompress(node.compr, node.data, node.dsize)
        except NodeFormatError as exc:
            if not ref.poisoned:
                ref.poisoned = True
                self.blocks[ref.block].pinned += 1
            raise DataIntegrityError(
                f"{self.device.path}: inode {ref.ino} bytes {start}..{start + length - 1}: the "
                f"newest node (version {ref.version} at 0x{ref.offset:08x}) is damaged ({exc}); "
                "refusing to return older data"
            ) from None
        return data[start - ref.foff : start - ref.foff + length]

    def _synced(self) -> None:
        if self.options.sync:
            self.device.flush()

    # --- space and garbage collection -----------------------------------------------------

    def free_blocks(self) -> list[Block]:
        return self.space.free_blocks()

    def gc_wanted(self) -> bool:
        """Would a background GC step help?  (See :meth:`Collector.wanted`.)"""
        return self.collector.wanted()

    def gc_step(self, *, wear_levelling: bool = True) -> bool:
        """Collect one victim block; False if no block holds anything to reclaim.  (The
        copies are programmed from the victim's read: no scratch buffer.)"""
        return self.collector.step(wear_levelling)

    def _pick_victim(self, wear_levelling: bool = True) -> Block | None:
        return self.collector.pick(wear_levelling)

    def _collect(self, victim: Block) -> None:
        self.collector.collect(victim)

    def report(self) -> LogReport:
        return build_report(self)


def _nothing_to_reclaim(_wear_levelling: bool) -> bool:
    return False


def _built() -> None:
    """A closed log's index needs no building."""


def _replace_cm(options: LogOptions, cleanmarkers: bool) -> LogOptions:
    return LogOptions(
        options.summaries,
        cleanmarkers,
        options.reserve_blocks,
        options.policy,
        options.wl_min_delta,
        options.sync,
        options.seed,
    )
