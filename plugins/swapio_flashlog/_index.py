"""The in-memory view of a JFFS2 log: node references, per-file fragments, dirents.

Like the kernel's ``jffs2_raw_node_ref`` / fragtree (``fs/jffs2/nodelist.h``,
``readinode.c``): data nodes arrive in any order; where they overlap the newer version
wins; equal versions are duplicates left by garbage collection and either copy may serve.
Each data node counts the 4 KiB chunks in which some of its bytes are still visible
(``refs``); at zero it is obsolete and its space is dirt for the garbage collector.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, rshift

from swapio_flashlog._nodes import JFFS2_PAGE, Dirent, SumDirent, SumEntry, SumInode

_FOFF = attrgetter("foff")
_PAGE_SHIFT = JFFS2_PAGE.bit_length() - 1


class RefKind(enum.Enum):
    INODE = "inode"
    DIRENT = "dirent"
    OTHER = "other"  # a node kept verbatim (RWCOMPAT_COPY types)


class NodeRef:
    """One node on flash: where it is, what it holds, whether it is still needed."""

    __slots__ = (
        "block",
        "dirent",
        "dsize",
        "foff",
        "ino",
        "kind",
        "length",
        "offset",
        "poisoned",
        "refs",
        "totlen",
        "version",
    )

    def __init__(
        self,
        kind: RefKind,
        offset: int,
        totlen: int,
        length: int,
        block: int,
        ino: int = 0,
        version: int = 0,
        foff: int = 0,
        dsize: int = 0,
        dirent: Dirent | None = None,
    ) -> None:
        self.kind = kind
        self.offset = offset  # absolute flash offset
        self.totlen = totlen
        self.length = length  # flash bytes it occupies (PAD + write-unit alignment)
        self.block = block
        self.ino = ino
        self.version = version
        self.foff = foff
        self.dsize = dsize
        self.dirent = dirent
        self.refs = 0
        self.poisoned = False

    def moved(self, offset: int, length: int, block: int) -> NodeRef:
        """An unreferenced copy of this reference at ``offset`` (what garbage collection
        leaves in a victim it could not erase for a node it moved)."""
        new = NodeRef(
            self.kind,
            offset,
            self.totlen,
            length,
            block,
            self.ino,
            self.version,
            self.foff,
            self.dsize,
            self.dirent,
        )
        return new

    def summary_entry(self, block_start: int) -> SumEntry | None:
        """The ``jffs2_sum_*_flash`` entry for this node, if summaries can describe it."""
        where = self.offset - block_start
        if self.kind is RefKind.INODE:
            return SumInode(self.ino, self.version, where, self.totlen)
        if self.kind is RefKind.DIRENT and self.dirent is not None:
            d = self.dirent
            return SumDirent(self.totlen, where, d.pino, d.version, d.ino, d.name, d.type)
        return None

    def __repr__(self) -> str:
        return (
            f"<NodeRef {self.kind.value} @0x{self.offset:x} ino={self.ino} v={self.version} "
            f"[{self.foff},+{self.dsize}) refs={self.refs}>"
        )


Obsoleter = Callable[[NodeRef], None]


@dataclass
class FileState:
    """A regular file (or any inode with data nodes): metadata and fragment lists."""

    ino: int
    mode: int = 0
    isize: int = 0
    meta_version: int = -1
    highest_version: int = 0
    chunks: dict[int, list[NodeRef]] = field(default_factory=dict)
    #: Nodes found at mount, not yet placed in ``chunks`` (the kernel, too, builds an
    #: inode's fragtree only when the inode is first used).
    pending: list[tuple[NodeRef, int, int]] = field(default_factory=list)

    def note_version(self, version: int) -> None:
        self.highest_version = max(self.highest_version, version)

    def defer(self, ref: NodeRef, mode: int, isize: int) -> None:
        """Remember a node found at mount; :meth:`build` places it later.

        ``ref.foff < 0`` marks a node known only from a summary entry: its header (range,
        mode, size) is read by :meth:`build`'s loader, as ``jffs2_get_inode_nodes`` does
        when an inode is first opened.
        """
        self.note_version(ref.version)
        if ref.foff >= 0 and ref.version > self.meta_version:
            self.meta_version = ref.version
            self.mode = mode
            self.isize = isize
        self.pending.append((ref, mode, isize))

    def build(self, obsolete: Obsoleter, load: Callable[[NodeRef], tuple[int, int]]) -> None:
        """Place every pending node in the fragment lists (``load`` reads unread headers)."""
        pending, self.pending = self.pending, []
        for ref, found_mode, found_isize in pending:
            mode, isize = load(ref) if ref.foff < 0 else (found_mode, found_isize)
            self.add(ref, mode, isize, obsolete)

    def add(self, ref: NodeRef, mode: int, isize: int, obsolete: Obsoleter) -> None:
        """Insert a data node; settle the chunks it touches."""
        self.note_version(ref.version)
        if ref.version > self.meta_version:
            self.meta_version = ref.version
            self.mode = mode
            self.isize = isize
        if ref.dsize == 0:
            ref.refs = 1  # a metadata-only node (directory, empty file): kept verbatim
            return
        first = ref.foff // JFFS2_PAGE
        last = (ref.foff + ref.dsize - 1) // JFFS2_PAGE
        if ref.dsize == JFFS2_PAGE and ref.foff % JFFS2_PAGE == 0:
            # the common case: one whole page; a newer whole page hides everything older
            frags = self.chunks.get(first)
            ref.refs = 1
            if frags is None:
                self.chunks[first] = [ref]
                return
            if frags[-1].version < ref.version:
                for frag in frags:
                    frag.refs -= 1
                    if frag.refs == 0:
                        obsolete(frag)
                self.chunks[first] = [ref]
                return
            ref.refs = 0
        # count every chunk first: settling one chunk must not see the node at zero
        # while it is still visible in another
        ref.refs += last - first + 1
        crowded: list[tuple[int, list[NodeRef]]] = []
        for chunk in range(first, last + 1):
            frags = self.chunks.get(chunk)
            if frags is None:
                self.chunks[chunk] = [ref]
                continue
            versions = [f.version for f in frags]
            frags.insert(bisect.bisect_left(versions, ref.version), ref)
            crowded.append((chunk, frags))
        for chunk, frags in crowded:
            self._settle(chunk, frags, obsolete)

    def add_all(self, refs: list[NodeRef], mode: int, isize: int, obsolete: Obsoleter) -> None:
        """:meth:`add` for a run of new nodes in version order (a request's pages), with the
        whole-page case inlined: this runs once per page written."""
        if not refs:
            return
        chunks = self.chunks
        for ref in refs:
            foff = ref.foff
            if ref.dsize != JFFS2_PAGE or foff % JFFS2_PAGE:
                self.add(ref, mode, isize, obsolete)
                continue
            chunk = foff // JFFS2_PAGE
            frags = chunks.get(chunk)
            if frags is not None and frags[-1].version >= ref.version:
                self.add(ref, mode, isize, obsolete)
                continue
            ref.refs = 1
            chunks[chunk] = [ref]
            if frags is not None:
                for frag in frags:
                    frag.refs -= 1
                    if frag.refs == 0:
                        obsolete(frag)
        last = refs[-1].version
        self.highest_version = max(self.highest_version, last)
        if last > self.meta_version:
            self.meta_version = last
            self.mode = mode
            self.isize = isize

    def add_pages(self, refs: list[NodeRef], mode: int, isize: int, obsolete: Obsoleter) -> None:
        """:meth:`add_all` for new nodes that are each one whole, page-aligned 4 KiB page
        (the swap-out path), newer than every node of the file: each becomes its chunk's
        only fragment, and what it hides loses one reference.  The chunks are looked up and
        set for the whole run at once; a run that writes one chunk twice goes through
        :meth:`add_all`."""
        chunks = self.chunks
        ids = list(map(rshift, map(_FOFF, refs), repeat(_PAGE_SHIFT)))
        if len(set(ids)) != len(ids):
            self.add_all(refs, mode, isize, obsolete)
            return
        hidden = list(filter(None, map(chunks.get, ids)))
        chunks.update(zip(ids, map(list, zip(refs)), strict=True))
        for ref in refs:
            ref.refs = 1
        for frags in hidden:
            for frag in frags:
                frag.refs -= 1
                if frag.refs == 0:
                    obsolete(frag)
        last = refs[-1].version
        self.highest_version = max(self.highest_version, last)
        if last > self.meta_version:
            self.meta_version = last
            self.mode = mode
            self.isize = isize

    def _settle(self, chunk: int, frags: list[NodeRef], obsolete: Obsoleter) -> None:
        """Drop fragments wholly hidden by newer ones (newest is last; ties: earlier wins)."""
        lo = chunk * JFFS2_PAGE
        hi = lo + JFFS2_PAGE
        covered: list[tuple[int, int]] = []
        keep: list[NodeRef] = []
        full = False
        for frag in reversed(frags):
            a = max(frag.foff, lo)
            b = min(frag.foff + frag.dsize, hi)
            if full or _covers(covered, a, b):
                frag.refs -= 1
                if frag.refs == 0:
                    obsolete(frag)
                continue
            keep.append(frag)
            covered.append((a, b))
            if a == lo and b == hi:
                full = True
        keep.reverse()
        frags[:] = keep


def _covers(intervals: list[tuple[int, int]], a: int, b: int) -> bool:
    """Is [a, b) inside the union of ``intervals``?"""
    if a >= b:
        return True
    pos = a
    for lo, hi in sorted(intervals):
        if lo > pos:
            return False
        pos = max(pos, hi)
        if pos >= b:
            return True
    return pos >= b


class DirentIndex:
    """Newest dirent per (parent, name); older ones are obsolete (``jffs2_add_fd_to_list``)."""

    def __init__(self) -> None:
        self.by_name: dict[tuple[int, bytes], NodeRef] = {}
        self.highest: dict[int, int] = {}  # per parent directory: highest dirent version

    def add(self, ref: NodeRef, obsolete: Obsoleter) -> None:
        d = ref.dirent
        assert d is not None
        self.highest[d.pino] = max(self.highest.get(d.pino, 0), d.version)
        key = (d.pino, d.name)
        old = self.by_name.get(key)
        if old is not None and old.version >= ref.version:
            ref.refs = 0
            obsolete(ref)
            return
        ref.refs = 1
        self.by_name[key] = ref
        if old is not None:
            old.refs = 0
            obsolete(old)

    def lookup(self, pino: int, name: bytes) -> int | None:
        ref = self.by_name.get((pino, name))
        if ref is None or ref.dirent is None or ref.dirent.ino == 0:
            return None
        return ref.dirent.ino
