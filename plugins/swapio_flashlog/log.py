"""The log: JFFS2 nodes appended to a flash device, mounted by scan, cleaned by GC.

* **Write**: every data range becomes a ``jffs2_raw_inode`` with the file's next version,
  appended at the user write head (an all-zero page becomes a ``JFFS2_COMPR_ZERO`` node, as
  does a discard, so a discarded slot can never fall back to older data).
* **Mount**: each erase block is read from its tail: a valid summary node
  (``fs/jffs2/summary.c``) lists the block's nodes, and only their 68-byte headers are read;
  other blocks are scanned in full.  Torn nodes at the end of a block (a power cut) are
  skipped and the block is scrubbed; damage anywhere else refuses the mount, naming it.
* **Garbage collection** moves the live nodes of a victim block to the GC write head
  (pristine copies, same versions) and erases it.  Victims: blocks to scrub first, then
  static wear levelling when erase counts drift apart, else greedy (fewest live bytes).
  ``policy="jffs2"`` reproduces ``jffs2_find_gc_block``'s randomised list choice instead.
* **Reserve**: user writes may not take the last ``reserve_blocks`` free blocks; GC may, and
  moving one victim needs at most one fresh block, so GC can always make progress.
"""

from __future__ import annotations

import random
import time
from typing import Literal

from swapio.errors import AreaExistsError, AreaNotFoundError, UsageError
from swapio_flashlog._blocks import (
    CHUNK_COST,
    Block,
    BlockReport,
    BlockState,
    LogOptions,
    LogReport,
    align,
)
from swapio_flashlog._classify import Verdict, classify_block
from swapio_flashlog._compress import decompress
from swapio_flashlog._index import DirentIndex, FileState, NodeRef, RefKind
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    INODE_SIZE,
    JFFS2_PAGE,
    MAX_NAME_LEN,
    SUM_INODE_SIZE,
    SUMMARY_SIZE,
    SWAPPED_MAGIC,
    Cleanmarker,
    Compat,
    Compression,
    Dirent,
    DirentType,
    Padding,
    RawInode,
    SumDirent,
    Summary,
    UnknownNode,
    decode,
    decode_inode,
    decode_inode_head,
    decode_marker,
    decode_summary,
    encode,
    encode_cleanmarker,
    encode_summary,
    pad,
    summary_span,
)
from swapio_flashlog._scan import NodeFound, ScanEvent, scan_block
from swapio_flashlog._victim import pick_victim
from swapio_flashlog.device import FlashDevice, Geometry, remove_image
from swapio_flashlog.errors import (
    BadBlockError,
    DataIntegrityError,
    FileNameError,
    ImageFormatError,
    LogFullError,
    NodeFormatError,
)

ROOT_INO = 1
FILE_MODE = 0o100600
__all__ = ["CHUNK_COST", "BlockState", "FlashLog", "LogOptions", "LogReport"]

Head = Literal["user", "gc"]
#: Bytes read from a block's start to call it empty (``EMPTY_SCAN_SIZE``, fs/jffs2/scan.c).
EMPTY_SCAN_SIZE = 1024


class FlashLog:
    """A mounted JFFS2 log.  Blocking; owned by one thread at a time."""

    def __init__(self, device: FlashDevice, options: LogOptions | None = None) -> None:
        self.device = device
        self.options = options or LogOptions()
        g = device.geometry
        self.geometry = g
        self.eb = g.erase_block
        self.align = max(4, g.write_unit)
        self.blocks = [Block(i, i * g.erase_block) for i in range(g.blocks)]
        self.files: dict[int, FileState] = {}
        self.dirents = DirentIndex()
        self.cleanmarkers = bool(self.options.cleanmarkers)
        self.heads: dict[str, Block] = {}
        self.other_live = 0
        self.gc_steps = 0
        self.nodes_programmed = 0  # data/dirent nodes written, user and GC (not summaries)
        self.mount_seconds = 0.0
        self._rng = random.Random(self.options.seed)
        self._mounted_rw = False
        self._garbage: list[Block] = []
        self._resumable: list[Block] = []
        self._unbuilt = False

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
        device = FlashDevice.format(path, geometry, bad_blocks)
        try:
            if cleanmarkers:
                marker = encode_cleanmarker() + b"\xff" * (-CLEANMARKER_SIZE % geometry.write_unit)
                for b in range(geometry.blocks):
                    if not device.is_bad(b):
                        device.program(b * geometry.erase_block, marker)
            log = cls(device, _replace_cm(options, cleanmarkers))
            log.mount()
        except BaseException:
            remove_image(path)  # still locked: nobody else has seen the new image
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
        device = FlashDevice.open(path, geometry, readonly=readonly)
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
        if self._mounted_rw and not self.device.dead:
            self.device.flush()
        self.device.close()

    # --- mount ------------------------------------------------------------------------

    def mount(self, *, readonly: bool = False) -> None:
        """Build the in-memory view from flash; recover from a power cut when writable."""
        began = time.perf_counter()
        if self.options.cleanmarkers is None:
            self.cleanmarkers = self._detect_cleanmarkers()
        garbage: list[tuple[Block, list[ScanEvent]]] = []
        for blk in self.blocks:
            if self.device.is_bad(blk.index):
                blk.state = BlockState.BAD
                continue
            if self.options.summaries and self._mount_from_summary(blk):
                continue
            events = self._mount_by_scan(blk)
            if events is not None:
                garbage.append((blk, events))
        self._check_garbage(garbage)
        self.mount_seconds = time.perf_counter() - began
        if not readonly:
            # every node header is checked before anything is written: a damaged image is
            # refused untouched, never half-recovered
            self.build_index()
            self._mounted_rw = True
            self.device.commit_sidecar()
        self._resume_heads()
        if not readonly:
            self._recover()

    def _detect_cleanmarkers(self) -> bool:
        marker = encode_cleanmarker()
        return any(
            self.device.read(b.start, CLEANMARKER_SIZE) == marker
            for b in self.blocks
            if not self.device.is_bad(b.index)
        )

    def _mount_from_summary(self, blk: Block) -> bool:
        eb = self.eb
        off = decode_marker(self.device.read(blk.start + eb - 8, 8))
        if off is None or off % 4 or not 0 <= off <= eb - SUMMARY_SIZE - 8:
            return False
        try:
            summary = decode_summary(self.device.read(blk.start + off, eb - off))
        except NodeFormatError:
            return False
        if summary.totlen != eb - off:
            return False
        # an interrupted erase wipes a block from its start and may leave the tail (and so
        # the summary) behind: the block must still begin with its cleanmarker or a node
        head = self.device.read(blk.start, CLEANMARKER_SIZE)
        expected = encode_cleanmarker() if summary.cln_mkr else encode_cleanmarker()[:2]
        if head[: len(expected)] != expected:
            return False
        start = blk.start
        index = blk.index
        refs: list[NodeRef] = []
        dirents: list[NodeRef] = []
        for entry in summary.entries:
            if isinstance(entry, SumDirent):
                d = Dirent(entry.pino, entry.version, entry.ino, entry.name, entry.type)
                ref = NodeRef(
                    RefKind.DIRENT,
                    start + entry.offset,
                    entry.totlen,
                    pad(entry.totlen),
                    index,
                    entry.ino,
                    entry.version,
                    dirent=d,
                )
                dirents.append(ref)
                continue
            totlen = entry.totlen
            if entry.offset + totlen > off or totlen < INODE_SIZE:
                return False
            # its file range is unknown until the header is read at first use (foff = -1)
            refs.append(
                NodeRef(
                    RefKind.INODE,
                    start + entry.offset,
                    totlen,
                    (totlen + 3) & ~3,
                    index,
                    entry.ino,
                    entry.version,
                    -1,
                    -1,
                )
            )
        files = self.files
        size = 0
        for ref in refs:  # _adopt, inlined: this loop runs once per node on the flash
            state = files.get(ref.ino)
            if state is None:
                state = files[ref.ino] = FileState(ref.ino)
            state.highest_version = max(state.highest_version, ref.version)
            state.pending.append((ref, 0, 0))
            size += ref.length
        blk.nodes.extend(refs)
        blk.used += size
        blk.live += size
        self._unbuilt = self._unbuilt or bool(refs)
        for ref in dirents:
            self._adopt(blk, ref)
        blk.state = BlockState.FULL
        blk.summarized = True
        blk.pos = eb
        return True

    def _mount_by_scan(self, blk: Block) -> list[ScanEvent] | None:
        """Scan a whole block; return its events if it is garbage (needs erase), else None."""
        if self.cleanmarkers and self._empty_start(blk):
            return None
        data = self.device.read(blk.start, self.eb)
        if data.count(0xFF) == self.eb:
            blk.state = BlockState.ERASE if self.cleanmarkers else BlockState.FREE
            return None
        events = scan_block(data, blk.start)
        verdict = classify_block(events, blk.start, self.eb)
        if verdict.verdict is Verdict.GARBAGE:
            blk.state = BlockState.ERASE
            return events
        if verdict.verdict is Verdict.CORRUPT:
            raise ImageFormatError(
                f"{self.device.path}: {verdict.problem}; not mounting, image untouched"
            )
        for event in verdict.found:
            self._adopt_found(blk, event)
        for ino, version in verdict.torn_inodes:
            self._file(ino).note_version(version)  # never reuse a version seen on flash
        blk.summarized = verdict.summarized
        if verdict.verdict is Verdict.FREE:
            blk.state, blk.pos = BlockState.FREE, align(verdict.end, self.align)
        else:
            blk.state, blk.pos = BlockState.FULL, self.eb
            blk.scrub = verdict.verdict is Verdict.TORN
            if verdict.verdict is Verdict.FULL and not verdict.summarized:
                # written in part, intact, erased after its last node: a former write head
                blk.pos = align(verdict.end, self.align)
                self._resumable.append(blk)
        return None

    def _resume_heads(self) -> None:
        """Make the (up to two) partly written blocks with the most room the write heads
        again (``nextblock`` in ``jffs2_scan_medium``); close any others."""
        candidates = sorted(self._resumable, key=lambda b: (b.pos, b.index))
        self._resumable = []
        for head, blk in zip(("user", "gc"), candidates, strict=False):
            entries = [r.summary_entry(blk.start) for r in blk.nodes]
            blk.sum_ok = all(e is not None for e in entries)
            blk.sum_size = sum(e.size for e in entries if e is not None)
            blk.state = BlockState.OPEN
            self.heads[head] = blk
        for blk in candidates[2:]:
            blk.pos = self.eb

    def _empty_start(self, blk: Block) -> bool:
        """``EMPTY_SCAN_SIZE``: decide on a block from its first 1 KiB when that is empty.

        With cleanmarkers, every program into a block starts right after its cleanmarker,
        and a cut program leaves a prefix, so a cleanmarker followed by 1 KiB of 0xFF is a
        free block; 1 KiB of 0xFF without a cleanmarker needs an erase (``BLK_STATE_ALLFF``).
        Without cleanmarkers a half-erased block could look like that, so the caller reads
        the whole block instead.
        """
        size = max(EMPTY_SCAN_SIZE, align(CLEANMARKER_SIZE, self.align) + 4)
        head = self.device.read(blk.start, size)
        if head.count(0xFF) == size:
            blk.state = BlockState.ERASE
            return True
        rest = head[CLEANMARKER_SIZE:]
        if head[:CLEANMARKER_SIZE] == encode_cleanmarker() and rest.count(0xFF) == len(rest):
            blk.state = BlockState.FREE
            blk.pos = align(CLEANMARKER_SIZE, self.align)
            return True
        return False

    def _adopt_found(self, blk: Block, event: NodeFound) -> None:
        node = event.node
        if isinstance(node, Cleanmarker | Padding):
            return
        if isinstance(node, Summary):
            blk.summarized = True
            return
        if isinstance(node, UnknownNode):
            compat = node.compat
            if compat is Compat.INCOMPAT or compat is Compat.ROCOMPAT:
                raise ImageFormatError(
                    f"{self.device.path}: node type 0x{node.nodetype:04x} at "
                    f"0x{event.offset:08x} is {compat.name}; swapio cannot mount this image"
                )
            if compat is Compat.RWCOMPAT_COPY and not event.obsolete:
                ref = NodeRef(RefKind.OTHER, event.offset, node.totlen, event.length, blk.index)
                self._adopt(blk, ref)
            return
        if isinstance(node, RawInode):
            ref = NodeRef(
                RefKind.INODE,
                event.offset,
                node.totlen,
                event.length,
                blk.index,
                node.ino,
                node.version,
                node.offset,
                node.dsize,
            )
            if event.obsolete:
                self._file(node.ino).note_version(node.version)
                return
            self._adopt(blk, ref, node.mode, node.isize)
            return
        assert isinstance(node, Dirent)
        if event.obsolete:
            return
        ref = NodeRef(
            RefKind.DIRENT,
            event.offset,
            node.totlen,
            event.length,
            blk.index,
            node.ino,
            node.version,
            dirent=node,
        )
        self._adopt(blk, ref)

    def _adopt(self, blk: Block, ref: NodeRef, mode: int = 0, isize: int = 0) -> None:
        blk.nodes.append(ref)
        blk.used += ref.length
        blk.live += ref.length
        if ref.kind is RefKind.INODE:
            self._file(ref.ino).defer(ref, mode, isize)
            self._unbuilt = True
        elif ref.kind is RefKind.DIRENT:
            self.dirents.add(ref, self._obsolete)
        else:
            ref.refs = 1
            self.other_live += ref.length

    def _ready(self, ino: int) -> FileState:
        """The file's state with every node found at mount placed in its index."""
        state = self.files[ino]
        if state.pending:
            state.build(self._obsolete, self._load_head)
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
        if self._unbuilt:
            for state in self.files.values():
                if state.pending:
                    state.build(self._obsolete, self._load_head)
            self._unbuilt = False

    def _file(self, ino: int) -> FileState:
        state = self.files.get(ino)
        if state is None:
            state = self.files[ino] = FileState(ino)
        return state

    def _obsolete(self, ref: NodeRef) -> None:
        blk = self.blocks[ref.block]
        blk.live -= ref.length
        if ref.poisoned:
            blk.pinned -= 1
            ref.poisoned = False

    def _check_garbage(self, garbage: list[tuple[Block, list[ScanEvent]]]) -> None:
        """Blocks that do not start with a node: at most one interrupted erase, and it may
        hold nothing that is not also (or newer) elsewhere; else it is not our image."""
        path = self.device.path
        if not garbage:
            return
        self._garbage = [blk for blk, _ in garbage]
        valid_elsewhere = any(
            b.state in (BlockState.FULL, BlockState.FREE)
            for b in self.blocks
            if b not in self._garbage
        )
        if len(garbage) > 1 or not valid_elsewhere:
            first = self.device.read(0, 2)
            if first in (SWAPPED_MAGIC.to_bytes(2, "little"),):
                raise ImageFormatError(f"{path}: a big-endian JFFS2 image; only little-endian")
            raise ImageFormatError(
                f"{path}: {len(garbage)} erase block(s) of {self.eb} bytes do not start with a "
                "JFFS2 node; not a JFFS2 image, or a different erase-block size"
            )
        blk, events = garbage[0]
        for event in events:
            if not isinstance(event, NodeFound) or event.obsolete:
                continue
            node = event.node
            if isinstance(node, RawInode) and not self._shadowed(node):
                raise ImageFormatError(
                    f"{path}: erase block {blk.index} does not start with a node but holds the "
                    f"newest copy of inode {node.ino} version {node.version}; wrong geometry?"
                )
            if isinstance(node, Dirent):
                ref = self.dirents.by_name.get((node.pino, node.name))
                if ref is None or ref.version < node.version:
                    raise ImageFormatError(
                        f"{path}: erase block {blk.index} does not start with a node but holds "
                        f"the newest dirent {node.name!r}; wrong geometry?"
                    )

    def _shadowed(self, node: RawInode) -> bool:
        if node.ino not in self.files:
            return False
        state = self._ready(node.ino)
        if node.dsize == 0:
            return state.meta_version >= node.version
        first = node.offset // JFFS2_PAGE
        last = (node.offset + node.dsize - 1) // JFFS2_PAGE
        for chunk in range(first, last + 1):
            frags = state.chunks.get(chunk)
            if not frags or frags[-1].version < node.version:
                return False
        return True

    def _recover(self) -> None:
        """After a power cut: erase interrupted erases, move data out of torn blocks."""
        for blk in self.blocks:  # half-erased blocks judged by their first 1 KiB, too
            if (
                blk.state is BlockState.ERASE
                and blk not in self._garbage
                and self.device.read(blk.start, self.eb).count(0xFF) != self.eb
            ):
                self._garbage.append(blk)
        for blk in self._garbage:
            self._erase(blk)
        self._garbage = []
        for blk in self.blocks:
            if blk.scrub and blk.state is BlockState.FULL:
                self._collect(blk)

    # --- files ------------------------------------------------------------------------

    def lookup(self, path: str) -> int:
        """Inode number of ``path`` (``/a/b``), following dirents from the root."""
        ino = ROOT_INO
        for part in _parts(path):
            found = self.dirents.lookup(ino, part)
            if found is None:
                raise AreaNotFoundError(f"{self.device.path}: no file {path!r} in the image")
            ino = found
        return ino

    def file(self, ino: int) -> FileState:
        """The state of inode ``ino``, its index built."""
        if ino not in self.files:
            raise ImageFormatError(f"{self.device.path}: inode {ino} has a name but no nodes")
        return self._ready(ino)

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
        state = self._file(ino)
        now = int(time.time()) & 0xFFFFFFFF
        self._write_inode(
            state,
            RawInode(
                ino,
                1,
                FILE_MODE,
                0,
                size,
                size,
                b"",
                Compression.ZERO,
                mtime=now,
                ctime=now,
                atime=now,
            ),
        )
        version = self.dirents.highest.get(parent, 0) + 1
        dirent = Dirent(parent, version, ino, name, DirentType.REG, now)
        ref = NodeRef(RefKind.DIRENT, 0, dirent.totlen, 0, 0, ino, version, dirent=dirent)
        self._append(encode(dirent), ref, "user")
        self.dirents.add(ref, self._obsolete)
        self._synced()
        return ino

    # --- data path --------------------------------------------------------------------

    def write(self, ino: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Append data nodes for ``data`` at file ``offset`` (split at 4 KiB pages)."""
        self.build_index()
        state = self.files[ino]
        view = memoryview(data).cast("B")
        pos = 0
        now = int(time.time()) & 0xFFFFFFFF
        while pos < len(view):
            foff = offset + pos
            n = min(len(view) - pos, JFFS2_PAGE - foff % JFFS2_PAGE)
            piece = bytes(view[pos : pos + n])
            zero = piece.count(0) == n
            node = RawInode(
                state.ino,
                state.highest_version + 1,
                state.mode or FILE_MODE,
                foff,
                n,
                state.isize,
                b"" if zero else piece,
                Compression.ZERO if zero else Compression.NONE,
                mtime=now,
                ctime=now,
                atime=now,
            )
            self._write_inode(state, node)
            pos += n
        self.device.add_host_bytes(len(view))
        self._synced()

    def discard(self, ino: int, offset: int, length: int) -> None:
        """Record that a range reads as zeros from now on: one ``JFFS2_COMPR_ZERO`` node."""
        self.build_index()
        state = self.files[ino]
        node = RawInode(
            state.ino,
            state.highest_version + 1,
            state.mode or FILE_MODE,
            offset,
            length,
            state.isize,
            b"",
            Compression.ZERO,
        )
        self._write_inode(state, node)
        self._synced()

    def read(self, ino: int, offset: int, out: memoryview) -> None:
        """Fill ``out`` from file ``offset``; raise rather than return a stale version."""
        state = self._ready(ino)
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
            return bytes(JFFS2_PAGE)
        if (
            len(frags) == 1
            and frags[0].foff <= lo
            and frags[0].foff + frags[0].dsize >= lo + JFFS2_PAGE
        ):
            data = self._node_data(frags[0], lo, JFFS2_PAGE)
            return bytes(JFFS2_PAGE) if data is None else data
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

    def _write_inode(self, state: FileState, node: RawInode) -> None:
        ref = NodeRef(
            RefKind.INODE, 0, node.totlen, 0, 0, node.ino, node.version, node.offset, node.dsize
        )
        self._append(encode(node), ref, "user")
        state.add(ref, node.mode, node.isize, self._obsolete)

    def _synced(self) -> None:
        if self.options.sync:
            self.device.flush()

    # --- appending ----------------------------------------------------------------------

    def _append(self, raw: bytes, ref: NodeRef, head: Head) -> None:
        length = align(len(raw), self.align)
        entry = ref.summary_entry(0)
        entry_size = 0 if entry is None else entry.size
        blk = self._head(head, length, entry_size)
        ref.offset = blk.start + blk.pos
        ref.length = length
        ref.block = blk.index
        self.device.program(ref.offset, raw + b"\xff" * (length - len(raw)))
        self.nodes_programmed += 1
        blk.pos += length
        blk.nodes.append(ref)
        blk.used += length
        blk.live += length
        if entry is None:
            blk.sum_ok = False
        else:
            blk.sum_size += entry_size

    def _fits(self, blk: Block, length: int, entry_size: int) -> bool:
        tail = 0
        if self.options.summaries and blk.sum_ok:
            tail = summary_span(blk.sum_size + entry_size)
        return blk.pos + length + tail <= self.eb

    def _head(self, head: Head, length: int, entry_size: int) -> Block:
        blk = self.heads.get(head)
        if blk is not None and self._fits(blk, length, entry_size):
            return blk
        if blk is not None:
            del self.heads[head]
            self._close_block(blk)
        blk = self._allocate(gc=head == "gc")
        self.heads[head] = blk
        return blk

    def _close_block(self, blk: Block) -> None:
        fits = self.eb - blk.pos >= summary_span(blk.sum_size)
        if self.options.summaries and blk.sum_ok and blk.nodes and fits:
            entries = tuple(
                e for e in (r.summary_entry(blk.start) for r in blk.nodes) if e is not None
            )
            totlen = self.eb - blk.pos
            summary = Summary(
                entries, totlen, blk.pos, CLEANMARKER_SIZE if self.cleanmarkers else 0
            )
            self.device.program(blk.start + blk.pos, encode_summary(summary))
            blk.summarized = True
        blk.state = BlockState.FULL
        blk.pos = self.eb

    def free_blocks(self) -> list[Block]:
        return [b for b in self.blocks if b.state in (BlockState.FREE, BlockState.ERASE)]

    def _allocate(self, *, gc: bool) -> Block:
        stepped = False  # wear levelling at most once per allocation: it frees no space
        budget = 2 * len(self.blocks)  # GC steps before we call the log full
        while True:
            free = self.free_blocks()
            if gc:
                if not free:
                    raise LogFullError(
                        f"{self.device.path}: no free erase block left even for garbage "
                        "collection (the reserve is exhausted)"
                    )
            elif len(free) <= self.options.reserve_blocks:
                budget -= 1
                if budget < 0 or not self.gc_step(wear_levelling=not stepped):
                    raise LogFullError(
                        f"{self.device.path}: the log is full: no erase block holds obsolete "
                        "data to collect"
                    )
                stepped = True
                continue
            counts = self.device.erase_counts()
            pick = (max if gc else min)(free, key=lambda b: (counts[b.index], b.index))
            if pick.state is BlockState.FREE and not self._blank_after(pick):
                pick.state = BlockState.ERASE  # a bit flipped in erased flash: erase again
            if pick.state is BlockState.ERASE and not self._erase(pick):
                continue
            pick.state = BlockState.OPEN
            return pick

    def _blank_after(self, blk: Block) -> bool:
        """Is everything after the block's write position still erased?  (A free block was
        judged by its first 1 KiB at mount; check the rest before programming into it.)"""
        rest = self.device.read(blk.start + blk.pos, self.eb - blk.pos)
        return rest.count(0xFF) == len(rest)

    def _erase(self, blk: Block) -> bool:
        """Erase a block and write its cleanmarker; False if the block went bad."""
        try:
            self.device.erase(blk.index)
        except BadBlockError:
            blk.state = BlockState.BAD
            return False
        blk.nodes = []
        blk.live = blk.used = blk.sum_size = blk.pinned = 0
        blk.summarized = blk.scrub = False
        blk.sum_ok = True
        blk.pos = 0
        blk.state = BlockState.ERASE
        if self.cleanmarkers:
            marker = encode_cleanmarker()
            self.device.program(blk.start, marker + b"\xff" * (align(12, self.align) - 12))
            blk.pos = align(CLEANMARKER_SIZE, self.align)
        blk.state = BlockState.FREE
        return True

    # --- garbage collection -----------------------------------------------------------

    def gc_wanted(self) -> bool:
        """Would a background GC step help?  (Free space is getting low and a dirty block
        exists.)  The scheduler's background class calls :meth:`gc_step` while True."""
        self.build_index()
        threshold = self.options.reserve_blocks + max(2, len(self.blocks) // 16)
        if len(self.free_blocks()) >= threshold:
            return False
        return any(
            b.state is BlockState.FULL and b.gain(self.eb) >= self.eb // 4 and not b.pinned
            for b in self.blocks
        )

    def gc_step(self, *, wear_levelling: bool = True) -> bool:
        """Collect one victim block; False if no block holds anything to reclaim."""
        self.build_index()
        victim = self._pick_victim(wear_levelling)
        if victim is None:
            return False
        self._collect(victim)
        return True

    def _pick_victim(self, wear_levelling: bool = True) -> Block | None:
        return pick_victim(
            self.blocks,
            self.device.erase_counts(),
            self.eb,
            self.options,
            self._rng,
            wear_levelling=wear_levelling,
        )

    def _collect(self, victim: Block) -> None:
        """Move the victim's live nodes to the GC head, then erase it."""
        self.build_index()
        for ref in [r for r in victim.nodes if r.refs > 0]:
            raw = self.device.read(ref.offset, ref.totlen)
            try:
                decode(raw, 0)
            except NodeFormatError:
                if not ref.poisoned:
                    ref.poisoned = True
                    victim.pinned += 1
                victim.scrub = False
                return  # keep the damaged node where it is: erasing it would expose stale data
            new = ref.moved(0, 0, 0)
            self._append(raw, new, "gc")
            if ref.kind is RefKind.INODE:
                self.files[ref.ino].replace(ref, new)
            elif ref.kind is RefKind.DIRENT:
                self.dirents.replace(ref, new)
            else:
                new.refs, ref.refs = ref.refs, 0
            victim.live -= ref.length
        self.gc_steps += 1
        self._erase(victim)

    # --- reporting --------------------------------------------------------------------

    def report(self) -> LogReport:
        self.build_index()
        counts = self.device.erase_counts()
        rows = []
        for b in self.blocks:
            free = self.eb - b.pos if b.state in (BlockState.FREE, BlockState.OPEN) else 0
            if b.state is BlockState.ERASE:
                free = self.eb
            rows.append(
                BlockReport(
                    b.index,
                    b.state.value,
                    counts[b.index],
                    len(b.nodes),
                    sum(1 for r in b.nodes if r.refs > 0),
                    b.live,
                    0 if b.state is BlockState.BAD else self.eb - b.live - free,
                    free,
                    b.summarized,
                )
            )
        good = [counts[b.index] for b in self.blocks if b.state is not BlockState.BAD] or [0]
        parent: dict[int, tuple[int, bytes]] = {}
        for (pino, name), ref in self.dirents.by_name.items():
            if ref.dirent is not None and ref.dirent.ino:
                parent[ref.dirent.ino] = (pino, name)
        files = {}
        for ino, (first_parent, name) in parent.items():
            if ino not in self.files:
                continue
            parts = [name]
            pino = first_parent
            while pino != ROOT_INO and pino in parent and len(parts) < 64:
                pino, up = parent[pino]
                parts.append(up)
            files["/".join(p.decode(errors="replace") for p in reversed(parts))] = self.files[
                ino
            ].isize
        return LogReport(
            self.geometry,
            self.cleanmarkers,
            tuple(rows),
            min(good),
            sum(good) / len(good),
            max(good),
            self.device.programmed_bytes,
            self.device.host_bytes,
            files,
        )


def _parts(path: str) -> list[bytes]:
    return [p.encode("utf-8", "surrogateescape") for p in path.split("/") if p]


def new_file_name(path: str) -> bytes:
    """The dirent name for a new file ``path``: one component under the root (``/swapfile``
    or ``swapfile``), 1..254 bytes (``JFFS2_MAX_NAME_LEN``), no NUL, not ``.``/``..``."""
    try:
        parts = _parts(path)
    except UnicodeEncodeError:
        raise FileNameError(f"file name {path!r} cannot be encoded as bytes") from None
    if len(parts) != 1:
        raise FileNameError(
            f"file name {path!r}: expected one name under / (e.g. /swapfile), "
            f"found {len(parts)} path components"
        )
    name = parts[0]
    if len(name) > MAX_NAME_LEN:
        raise FileNameError(
            f"file name of {len(name)} bytes; a JFFS2 dirent holds at most {MAX_NAME_LEN}"
        )
    if b"\0" in name or name in (b".", b".."):
        raise FileNameError(f"file name {path!r} is not a valid file name (NUL, . or ..)")
    return name


def check_file_size(size: int) -> None:
    """A JFFS2 ``isize`` is 32 bits."""
    if size <= 0 or size >= 1 << 32:
        raise UsageError(f"file size {size} out of range 1..4 GiB-1")


def fit_error(
    where: str, size: int, need: int, capacity: int, page_size: int, reserve: int
) -> UsageError:
    """The error for a file that would not fit (see :func:`capacity_chunks`)."""
    return UsageError(
        f"{where}: a {size}-byte file does not fit: {need} chunks of 4 KiB would be live, "
        f"the flash keeps at most {capacity} in {page_size}-byte pages with {reserve} "
        "reserved erase blocks"
    )


def capacity_chunks(erase_block: int, good_blocks: int, reserve: int, page_size: int) -> int:
    """4 KiB chunks a log of ``good_blocks`` erase blocks keeps live with ``reserve``
    reserved blocks and the two write heads, in nodes of ``min(page_size, 4096)`` bytes."""
    node = min(page_size, JFFS2_PAGE)
    cost = pad(INODE_SIZE + node) + SUM_INODE_SIZE
    per_block = (erase_block - CLEANMARKER_SIZE - summary_span(0)) // cost
    return max(0, good_blocks - reserve - 2) * per_block * node // JFFS2_PAGE


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
