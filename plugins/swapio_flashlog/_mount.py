"""Mounting a log: the in-memory view built from flash, and recovery after a power cut.

``jffs2_scan_medium`` / ``jffs2_scan_eraseblock`` (``fs/jffs2/scan.c``): each erase block is
read from its tail: a valid summary node (``fs/jffs2/summary.c``) lists the block's nodes,
and only their 68-byte headers are read (later, when a file is first used); other blocks
are scanned in full (:mod:`swapio_flashlog._scan`, judged by :mod:`swapio_flashlog._classify`).
Torn nodes at the end of a block (a power cut) are skipped and the block is scrubbed;
damage anywhere else refuses the mount, naming it.  Recovery erases interrupted erases and
moves the data out of torn blocks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from swapio_flashlog._blocks import Block, BlockState, align
from swapio_flashlog._classify import Verdict, classify_block
from swapio_flashlog._index import FileState, NodeRef, RefKind
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    INODE_SIZE,
    JFFS2_PAGE,
    SUMMARY_SIZE,
    SWAPPED_MAGIC,
    Cleanmarker,
    Compat,
    Dirent,
    Padding,
    RawInode,
    SumDirent,
    Summary,
    UnknownNode,
    decode_marker,
    decode_summary,
    encode_cleanmarker,
    encode_entry,
    pad,
)
from swapio_flashlog._scan import NodeFound, ScanEvent, scan_block
from swapio_flashlog.errors import ImageFormatError, NodeFormatError

if TYPE_CHECKING:
    from swapio_flashlog.log import FlashLog

#: Bytes read from a block's start to call it empty (``EMPTY_SCAN_SIZE``, fs/jffs2/scan.c).
EMPTY_SCAN_SIZE = 1024


class Mounter:
    """Builds a :class:`~swapio_flashlog.log.FlashLog`'s view of its flash (once)."""

    def __init__(self, log: FlashLog) -> None:
        self.log = log
        self.device = log.device
        self.space = log.space
        self.options = log.options
        self.blocks = log.space.blocks
        self.eb = log.space.eb
        self.align = log.space.align
        self.files = log.files
        self.dirents = log.dirents
        self._garbage: list[Block] = []
        self._resumable: list[Block] = []

    @property
    def cleanmarkers(self) -> bool:
        return self.space.cleanmarkers

    @cleanmarkers.setter
    def cleanmarkers(self, value: bool) -> None:
        self.space.cleanmarkers = value

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
        self.log.mount_seconds = time.perf_counter() - began
        if not readonly:
            # every node header is checked before anything is written: a damaged image is
            # refused untouched, never half-recovered
            self.log.build_index()
            self.log.mounted_rw = True
            self.device.commit_sidecar()
        self._resume_heads()
        self.space.recount()
        if not readonly:
            self.log._recover()

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
        self.log.unbuilt = self.log.unbuilt or bool(refs)
        for ref in dirents:
            self.log.adopt(blk, ref)
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
            self.log.file_state(ino).note_version(version)  # never reuse a version seen on flash
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
            blk.sum_entries = bytearray(b"".join(encode_entry(e) for e in entries if e is not None))
            blk.state = BlockState.OPEN
            self.space.heads[head] = blk
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
                self.log.adopt(blk, ref)
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
                self.log.file_state(node.ino).note_version(node.version)
                return
            self.log.adopt(blk, ref, node.mode, node.isize)
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
        self.log.adopt(blk, ref)

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
        state = self.log.ready(node.ino)
        if node.dsize == 0:
            return state.meta_version >= node.version
        first = node.offset // JFFS2_PAGE
        last = (node.offset + node.dsize - 1) // JFFS2_PAGE
        for chunk in range(first, last + 1):
            frags = state.chunks.get(chunk)
            if not frags or frags[-1].version < node.version:
                return False
        return True

    def recover(self) -> None:
        """After a power cut: erase interrupted erases, move data out of torn blocks."""
        for blk in self.blocks:  # half-erased blocks judged by their first 1 KiB, too
            if (
                blk.state is BlockState.ERASE
                and blk not in self._garbage
                and self.device.read(blk.start, self.eb).count(0xFF) != self.eb
            ):
                self._garbage.append(blk)
        for blk in self._garbage:
            self.space.erase(blk)
        self._garbage = []
        for blk in self.blocks:
            if blk.scrub and blk.state is BlockState.FULL:
                self.log._collect(blk)
