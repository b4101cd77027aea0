"""Incremental scan of one erase block into events (``jffs2_scan_eraseblock``, sans-I/O).

Feed bytes in chunks of any size; take events out.  The scan walks the block as the kernel
does: runs of 0xFFFFFFFF words are empty flash, a word without the 0x1985 magic or with a
bad ``hdr_crc`` is 4 bytes of dirt, a node that would run past the block end is 4 bytes of
dirt ("wrong erase size?"), a node whose body fails its CRCs is skipped whole
(``PAD(totlen)``).  Splitting the input differently never changes the events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swapio_flashlog._nodes import (
    HEADER_SIZE,
    INODE_SIZE,
    Cleanmarker,
    Node,
    NodeHeader,
    NodeType,
    RawInode,
    decode,
    decode_header,
    decode_inode,
    pad,
)
from swapio_flashlog.errors import NodeFormatError

_NOT_FF = re.compile(rb"[^\xff]")
_EMPTY_WORD = b"\xff\xff\xff\xff"
_COMPACT = 1 << 16


@dataclass(frozen=True)
class NodeFound:
    """An intact node at ``offset`` (absolute); ``obsolete`` if ACCURATE was cleared."""

    offset: int
    node: Node
    obsolete: bool = False

    @property
    def length(self) -> int:
        return pad(self.node.totlen)


@dataclass(frozen=True)
class BadNode:
    """A node whose header is intact but whose body fails a check; ``length`` is skipped.

    ``inode`` is set when the fixed part of an inode node is intact and only its data is
    bad: the node's identity (ino, version, range) is then known.
    """

    offset: int
    length: int
    header: NodeHeader
    reason: str
    inode: RawInode | None = None


@dataclass(frozen=True)
class Dirt:
    """Bytes that are neither empty flash nor part of a node with an intact header."""

    offset: int
    length: int
    reason: str


@dataclass(frozen=True)
class Empty:
    """A run of erased (0xFF) words."""

    offset: int
    length: int


ScanEvent = NodeFound | BadNode | Dirt | Empty


class BlockScanner:
    """Scan ``size`` bytes of one erase block starting at absolute offset ``base``."""

    def __init__(self, size: int, base: int = 0) -> None:
        self.size = size
        self.base = base
        self._buf = bytearray()
        self._start = 0  # stream offset of _buf[0]
        self._pos = 0  # index into _buf of the next unscanned byte
        self._eof = False
        self._events: list[ScanEvent] = []
        self._empty_from: int | None = None
        self._dirt_from: int | None = None
        self._dirt_reason = ""

    # --- input ------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append the next bytes of the block."""
        if self._eof:
            raise NodeFormatError("scanner fed after end()")
        if self._start + len(self._buf) + len(data) > self.size:
            raise NodeFormatError(
                f"fed {self._start + len(self._buf) + len(data)} bytes to a {self.size}-byte block"
            )
        self._buf += data
        self._run()

    def end(self) -> list[ScanEvent]:
        """No more bytes will come (the block or the image ends); return remaining events."""
        self._eof = True
        self._run()
        self._flush_empty()
        self._flush_dirt()
        return self.events()

    def events(self) -> list[ScanEvent]:
        """Take the events produced so far."""
        out, self._events = self._events, []
        return out

    # --- machinery --------------------------------------------------------------------

    def _flush_empty(self, at: int | None = None) -> None:
        if self._empty_from is not None:
            stop = self._start + self._pos if at is None else at
            self._events.append(Empty(self.base + self._empty_from, stop - self._empty_from))
            self._empty_from = None

    def _flush_dirt(self) -> None:
        if self._dirt_from is not None:
            stop = self._start + self._pos
            self._events.append(
                Dirt(self.base + self._dirt_from, stop - self._dirt_from, self._dirt_reason)
            )
            self._dirt_from = None

    def _dirt(self, nbytes: int, reason: str) -> None:
        self._flush_empty()
        if self._dirt_from is None:
            self._dirt_from = self._start + self._pos
            self._dirt_reason = reason
        self._pos += nbytes

    def _emit(self, event: ScanEvent) -> None:
        self._flush_empty()
        self._flush_dirt()
        self._events.append(event)

    def _run(self) -> None:
        buf = self._buf
        while True:
            here = self._start + self._pos
            avail = len(buf) - self._pos
            if here >= self.size or avail == 0:
                break
            if avail < 4:
                if not self._eof:
                    break
                self._dirt(avail, "trailing bytes shorter than a word")
                continue
            if buf[self._pos : self._pos + 4] == _EMPTY_WORD:
                self._flush_dirt()
                if self._empty_from is None:
                    self._empty_from = here
                match = _NOT_FF.search(buf, self._pos)
                stop = len(buf) if match is None else match.start()
                words = (stop - self._pos) // 4
                self._pos += max(words, 1) * 4
                continue
            if avail < HEADER_SIZE and not self._eof:
                break
            try:
                hdr = decode_header(buf, self._pos)
            except NodeFormatError as exc:
                self._dirt(4, str(exc))
                continue
            if hdr.totlen > self.size - here:
                self._dirt(4, f"node of totlen {hdr.totlen} runs past the erase block end")
                continue
            need = min(pad(hdr.totlen), self.size - here)
            if avail < need:
                if not self._eof:
                    break
                self._dirt(4, f"node of totlen {hdr.totlen} truncated at the end of the image")
                continue
            self._node(hdr, here, need)
        if self._pos > _COMPACT and self._empty_from is None and self._dirt_from is None:
            del buf[: self._pos]
            self._start += self._pos
            self._pos = 0

    def _node(self, hdr: NodeHeader, here: int, length: int) -> None:
        buf = self._buf
        absolute = self.base + here
        try:
            node = decode(buf, self._pos)
        except NodeFormatError as exc:
            inode = None
            if hdr.base_type == NodeType.INODE and hdr.totlen >= INODE_SIZE:
                try:
                    inode = decode_inode(buf, self._pos, check_data=False)
                except NodeFormatError:
                    inode = None
            self._emit(BadNode(absolute, length, hdr, str(exc), inode))
            self._pos += length
            return
        if isinstance(node, Cleanmarker) and here != 0:
            self._emit(BadNode(absolute, length, hdr, "cleanmarker not at the start of its block"))
        else:
            self._emit(NodeFound(absolute, node, obsolete=not hdr.accurate))
        self._pos += length


def scan_block(data: bytes | bytearray | memoryview, base: int = 0) -> list[ScanEvent]:
    """Scan a whole erase block held in ``data`` (absolute start ``base``)."""
    scanner = BlockScanner(len(data), base)
    scanner.feed(data)
    return scanner.end()
