"""The receive side of an RPC connection: pool-counted receive buffers, records in place,
bulk READ data placed straight into the caller's pages, and the ``SOCK_MEMALLOC`` rule.

No sockets here: the I/O shell asks :meth:`ReplyReceiver.buffers` where the next bytes go,
reads into them (``recvmsg_into``), and reports how many arrived with
:meth:`ReplyReceiver.received`.  Records (RFC 5531 §11) are parsed where they landed.

* **Receive buffers come from the page pool** (the skbs of a ``SOCK_MEMALLOC`` socket):
  one buffer per receive burst, taken when bytes are expected and given back as soon as every
  record in it has been consumed and released.  The first try is a large buffer from
  ordinary memory (``__GFP_NOMEMALLOC``); when that fails, one page-sized buffer with
  ``kmalloc_reserve`` semantics in the socket's memalloc context, which may come from the
  reserve (``pfmemalloc``).  When even that fails, :meth:`buffers` returns nothing and the
  shell stops reading until :meth:`wait_for_memory` returns (the receive window closes).
* **The SOCK_MEMALLOC rule** (``sk_filter`` dropping ``pfmemalloc`` skbs): a reply that
  landed in a reserve-backed buffer is handed only to a call made in memalloc context
  (:meth:`PoolBuffer.may_keep` evaluated in the caller's context); for any other call it is
  dropped (:meth:`ReceiverOwner.drop_reply`) and that call waits for ordinary memory and
  retransmits.
* **Placement** (``xdr_partial_copy_from_skb`` into page-cache pages): a call may name
  destination pages and a :data:`SpanFinder` for its results (READ3resok).  Once the reply's
  header has arrived the bulk data goes into those pages: bytes already in the receive buffer
  are copied once, the rest is received straight into the pages; only the header stays in
  the receive buffer.
* **A delivered reply pins its buffer** until the caller releases the result; a buffer is
  returned to the pool when it is neither the current receive buffer nor pinned.  One
  in-flight request therefore holds at most one receive buffer at a time
  (:data:`RESERVE_PAGES_PER_REPLY` pages when it came from the reserve).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from swapio.memalloc import memalloc
from swapio_nfs._errors import MalformedReplyError, RecordMarkError
from swapio_nfs._record import LAST_FRAGMENT, MARK_SIZE, MAX_FRAGMENT, decode_mark
from swapio_nfs._rpc import ACCEPTED_HEADER_SIZE, accepted_results_offset, peek_xid

if TYPE_CHECKING:
    from swapio.pool import PagePool, PoolBuffer

#: Size of a receive buffer taken from ordinary memory.
RX_BUFFER_BYTES = 64 * 1024
#: Pages of a receive buffer taken with reserve access (pool pages; one page holds any
#: reply a memalloc request waits for: WRITE3res and COMMIT3res are < 200 bytes).
RESERVE_PAGES_PER_REPLY = 1

SpanFinder = Callable[[memoryview], "tuple[int, int] | None"]
"""Given a prefix of a call's results, where its bulk data lies: ``(offset, length)``;
``None`` when the prefix is too short to tell; ``NOT_PLACEABLE`` for a reply to receive
whole (an error status, an inconsistent header)."""

NOT_PLACEABLE = (-1, 0)
_MARK_XID = struct.Struct(">II")


@dataclass(eq=False, slots=True)
class Placement:
    """Where a call's bulk reply data goes: ``pages`` in order, found by ``span``."""

    span: SpanFinder
    pages: Sequence[memoryview]
    head_max: int
    """Bytes of results after which ``span`` never answers None."""
    capacity: int
    """Bytes the pages hold (``sum(p.nbytes for p in pages)``)."""


class ReplyTarget(Protocol):
    """What the receiver needs of a call waiting for its reply."""

    @property
    def memalloc(self) -> bool: ...

    @property
    def placement(self) -> Placement | None: ...

    def waiting(self) -> bool: ...


class ReceiverOwner(Protocol):
    """The connection a receiver reports to."""

    def target(self, xid: int) -> ReplyTarget | None: ...

    def deliver(self, xid: int, record: memoryview, pin: RxBuffer | None) -> None: ...

    def drop_reply(self, xid: int) -> None: ...

    def unknown_reply(self, xid: int) -> None: ...


class RxBuffer:
    """A receive buffer from the pool, given back when unpinned and no longer current."""

    __slots__ = ("_buffer", "current", "pfmemalloc", "pins", "view")

    def __init__(self, buffer: PoolBuffer) -> None:
        self._buffer = buffer
        self.view = buffer.view
        self.pfmemalloc = buffer.pfmemalloc
        self.pins = 0
        self.current = True

    def may_keep(self, memalloc_work: bool) -> bool:
        """The SOCK_MEMALLOC rule for a reply in this buffer answering such work."""
        if not self.pfmemalloc:
            return True
        with memalloc(memalloc_work):
            return self._buffer.may_keep()

    def pin(self) -> None:
        self.pins += 1

    def unpin(self) -> None:
        self.pins -= 1
        if self.pins == 0 and not self.current:
            self._buffer.release()

    def retire(self) -> None:
        """No more bytes will be received here."""
        self.current = False
        if self.pins == 0:
            self._buffer.release()


@dataclass(slots=True)
class ReceiveStats:
    """Counters of a connection's receive side (all its TCP connections in turn)."""

    buffers_taken: int = 0
    """Receive buffers taken from the pool."""
    reserve_buffers: int = 0
    """Of those, buffers that came from the reserve (``pfmemalloc``)."""
    placed_bytes: int = 0
    """Bulk data received straight into callers' pages (no copy in user space)."""
    copied_bytes: int = 0
    """Bytes copied in user space: data that arrived with its header, partial records moved."""


_MARK, _RECORD, _DIRECT, _TAIL, _FRAGMENT, _SKIP = range(6)


class ReplyReceiver:
    """Reassemble RPC reply records from a byte stream into pool buffers.

    :param pool: the pool receive buffers come from.
    :param owner: receives the records (see :class:`ReceiverOwner`).
    :param sock_memalloc: the socket serves swap (``sk_set_memalloc``): its receive buffers
        may come from the reserve.
    :param max_record: largest record accepted (a larger mark is a :class:`RecordMarkError`).

    After an error the stream is out of sync; the connection must be closed.
    """

    def __init__(
        self,
        pool: PagePool,
        owner: ReceiverOwner,
        *,
        sock_memalloc: bool,
        max_record: int,
        stats: ReceiveStats | None = None,
    ) -> None:
        self._pool = pool
        self._owner = owner
        self._sock_memalloc = sock_memalloc
        self._max = max_record
        self._rx: RxBuffer | None = None
        self._pos = 0  # first byte of _rx not yet consumed
        self._end = 0  # end of the bytes received into _rx
        self._state = _MARK
        self._last = True
        self._record_start = 0  # offset in _rx of the record being received
        self._record_len = 0
        self._xid = -1
        self._placed: Placement | None = None  # decided placement of the current record
        self._target: ReplyTarget | None = None
        self._decided = False
        self._direct: list[memoryview] = []  # page pieces still to receive directly
        self._direct_left = 0
        self._tail_left = 0
        self._head: RxBuffer | None = None  # pinned buffer holding a placed record's header
        self._head_span = (0, 0)
        self._assembly: bytearray | None = None  # a multi-fragment record
        self._fragment_left = 0
        self._move_need = 0  # bytes of room the partial record needs in a new buffer
        self.stats = stats if stats is not None else ReceiveStats()

    # ----------------------------------------------------------------- memory

    def _take(self, nbytes: int) -> RxBuffer | None:
        pool = self._pool
        with memalloc(False):  # a large buffer only from ordinary memory
            buf = pool.try_alloc(max(nbytes, RX_BUFFER_BYTES))
        if buf is None:
            size = max(nbytes, RESERVE_PAGES_PER_REPLY * pool.page_size)
            with memalloc(self._sock_memalloc):
                buf = pool.try_alloc(size)
        if buf is None:
            return None
        self.stats.buffers_taken += 1
        self.stats.reserve_buffers += buf.pfmemalloc
        return RxBuffer(buf)

    async def wait_for_memory(self) -> None:
        """Wait until a receive buffer can be taken (the shell then reads again)."""
        pool = self._pool
        need = max(self._move_need, MARK_SIZE)
        with memalloc(self._sock_memalloc):
            buf = await pool.alloc(max(need, RESERVE_PAGES_PER_REPLY * pool.page_size))
        buf.release()  # taken again, synchronously, by the next buffers()

    def _ensure_rx(self) -> bool:
        """Make sure the current buffer has room for what the stream needs next."""
        rx = self._rx
        need = self._move_need
        if rx is not None and not need and self._end < rx.view.nbytes:
            return True
        keep = self._end - self._pos if rx is not None else 0
        new = self._take(max(need, keep, MARK_SIZE))
        if new is None:
            return False
        if rx is not None:
            if keep:
                new.view[:keep] = rx.view[self._pos : self._end]
                self.stats.copied_bytes += keep
            self._record_start -= self._pos
            rx.retire()
        self._rx = new
        self._pos, self._end = 0, keep
        self._move_need = 0
        return True

    # ----------------------------------------------------------------- the shell's side

    def buffers(self) -> list[memoryview]:
        """Where the next received bytes go, in order; empty when no memory can be had."""
        if self._state == _DIRECT:
            if self._target is None or not self._target.waiting():
                self._abandon_direct()  # the call ended: its pages are no longer ours
            else:
                views = list(self._direct)
                if self._ensure_rx():
                    assert self._rx is not None
                    views.append(self._rx.view[self._end :])
                return views
        if not self._ensure_rx():
            return []
        assert self._rx is not None
        return [self._rx.view[self._end :]]

    def received(self, nbytes: int) -> None:
        """``nbytes`` arrived in the views :meth:`buffers` returned, in order."""
        if self._state == _DIRECT:
            direct = min(nbytes, self._direct_left)
            self._advance_direct(direct)
            nbytes -= direct
        self._end += nbytes
        self._parse()
        self._after_parse()

    def close(self) -> None:
        """Give every buffer back (the connection is gone)."""
        if self._head is not None:
            self._head.unpin()
            self._head = None
        if self._rx is not None:
            self._rx.retire()
            self._rx = None
        self._assembly = None

    # ----------------------------------------------------------------- parsing

    def _parse(self) -> None:
        while True:
            state = self._state
            if state == _MARK:
                if self._whole_record():
                    continue
                if not self._read_mark():
                    return
            elif state == _RECORD:
                if not self._on_record_bytes():
                    return
            elif state == _TAIL:
                take = min(self._tail_left, self._end - self._pos)
                self._pos += take
                self._tail_left -= take
                if self._tail_left:
                    return
                self._finish_placed()
            elif state == _FRAGMENT:
                if not self._on_fragment_bytes():
                    return
            elif state == _SKIP:
                take = min(self._tail_left, self._end - self._pos)
                self._pos += take
                self._tail_left -= take
                if self._tail_left:
                    return
                self._state = _MARK
            else:  # _DIRECT: the stream continues in the caller's pages
                return

    def _whole_record(self) -> bool:
        """The common case: a whole single-fragment record is in the buffer; handle it at once.

        Same outcome as the general path (:meth:`_read_mark` onwards) without its states.
        """
        rx = self._rx
        pos = self._pos
        if rx is None or self._assembly is not None or self._end - pos < MARK_SIZE + 4:
            return False
        view = rx.view
        mark, xid = _MARK_XID.unpack_from(view, pos)
        length = mark & MAX_FRAGMENT
        start = pos + MARK_SIZE
        if not mark & LAST_FRAGMENT or length < 4 or start + length > self._end:
            return False
        if length > self._max:
            return False  # refused by the general path
        self._pos = start + length
        target = self._owner.target(xid)
        if target is None:
            self._owner.unknown_reply(xid)
            return True
        if not rx.may_keep(target.memalloc):
            self._owner.drop_reply(xid)  # SOCK_MEMALLOC: not for this call
            return True
        record = view[start : start + length]
        placement = target.placement
        if placement is not None:
            span = locate_data(record, length, True, placement)
            if span is not None and span != NOT_PLACEABLE:
                offset, size = span
                _copy_into(placement.pages, record[offset : offset + size])
                self.stats.copied_bytes += size
                record = record[:offset]
        self._owner.deliver(xid, record, rx)
        return True

    def _read_mark(self) -> bool:
        assert self._rx is not None
        pos = self._pos
        if self._end - pos < MARK_SIZE:
            return False
        last, length = decode_mark(self._rx.view[pos : pos + MARK_SIZE])
        held = len(self._assembly) if self._assembly is not None else 0
        if held + length > self._max:
            raise RecordMarkError(
                f"record mark announces a fragment of {length} bytes, making a record of "
                f"{held + length} bytes; the maximum is {self._max}"
            )
        self._pos = pos + MARK_SIZE
        self._last = last
        if not last or self._assembly is not None:
            if self._assembly is None:
                self._assembly = bytearray()
            self._fragment_left = length
            self._state = _FRAGMENT
            return True
        self._record_start = self._pos
        self._record_len = length
        self._xid = -1
        self._target = None
        self._decided = False
        self._state = _RECORD
        return True

    def _on_record_bytes(self) -> bool:
        assert self._rx is not None
        start, length = self._record_start, self._record_len
        have = min(self._end - start, length)
        view = self._rx.view
        if self._xid < 0 and have >= 4:
            self._xid = peek_xid(view[start : start + 4])
            self._target = self._owner.target(self._xid)
            if self._target is None:  # a late duplicate or a reply to nothing: skip its bytes
                self._owner.unknown_reply(self._xid)
                self._pos = start + have
                self._tail_left = length - have
                self._state = _SKIP
                return True
            self._decided = self._target.placement is None
        elif length < 4 and have == length:
            raise MalformedReplyError(f"RPC message of {length} bytes has no XID (need 4)")
        if not self._decided and self._xid >= 0:
            span = self._find_span(view[start : start + have], have == length)
            if span is not None:
                self._decided = True
                if span != NOT_PLACEABLE:
                    self._start_placement(span)
                    return True
        if have < length:
            self._move_need = self._room_needed()
            return False
        self._pos = start + length
        self._state = _MARK
        self._complete(view[start : start + length], self._rx)
        return True

    def _room_needed(self) -> int:
        """Room a partial record needs past its start; nonzero when the buffer lacks it."""
        assert self._rx is not None
        length = self._record_len
        if self._xid < 0:  # only the XID is needed to know more
            length = min(length, 4)
        elif not self._decided and self._target is not None and self._target.placement:
            length = min(length, ACCEPTED_HEADER_SIZE + self._target.placement.head_max)
        if self._record_start + length <= self._rx.view.nbytes:
            return 0
        return length

    def _find_span(self, prefix: memoryview, complete: bool) -> tuple[int, int] | None:
        """The data span of the current record (offsets in the record), or None."""
        target = self._target
        assert target is not None
        assert target.placement is not None
        return locate_data(prefix, self._record_len, complete, target.placement)

    def _start_placement(self, span: tuple[int, int]) -> None:
        assert self._rx is not None
        assert self._target is not None
        placement = self._target.placement
        assert placement is not None
        offset, size = span
        start = self._record_start
        self._head = self._rx
        self._rx.pin()
        self._head_span = (start, start + offset)
        self._direct = _pieces(placement.pages, size)
        self._direct_left = size
        self._tail_left = self._record_len - offset - size
        data_start = start + offset
        present = min(self._end - data_start, size)
        if present > 0:
            _copy_into(self._direct, self._rx.view[data_start : data_start + present])
            self.stats.copied_bytes += present
            self._advance_direct(present, count=False)
        self._pos = data_start + max(present, 0)
        self._state = _DIRECT if self._direct_left else _TAIL

    def _advance_direct(self, nbytes: int, *, count: bool = True) -> None:
        if count:
            self.stats.placed_bytes += nbytes
        self._direct_left -= nbytes
        pieces = self._direct
        while nbytes and pieces:
            first = pieces[0]
            if first.nbytes <= nbytes:
                nbytes -= first.nbytes
                pieces.pop(0)
            else:
                pieces[0] = first[nbytes:]
                nbytes = 0
        if not self._direct_left and self._state == _DIRECT:
            self._state = _TAIL

    def _abandon_direct(self) -> None:
        """The call gave up while its data streamed in: receive the rest and discard it."""
        self._tail_left += self._direct_left
        self._direct_left = 0
        self._direct = []
        self._state = _TAIL

    def _finish_placed(self) -> None:
        head = self._head
        assert head is not None
        self._head = None
        self._state = _MARK
        start, end = self._head_span
        try:
            self._complete(head.view[start:end], head)
        finally:
            head.unpin()

    def _complete(self, record: memoryview, rx: RxBuffer) -> None:
        """A whole record (or a placed record's header) is in ``rx``: deliver or drop it."""
        xid = self._xid if self._xid >= 0 else peek_xid(record)
        target = self._owner.target(xid)
        if target is None:
            self._owner.unknown_reply(xid)
        elif not rx.may_keep(target.memalloc):
            self._owner.drop_reply(xid)  # SOCK_MEMALLOC: not for this call
        else:
            if self._state == _MARK and target.placement is not None and not self._decided:
                self._place_whole(record, target.placement)
                record = record[: self._head_span[1]]
            self._owner.deliver(xid, record, rx)

    def _place_whole(self, record: memoryview, placement: Placement) -> None:
        """A placeable record that arrived whole in one piece: copy its data into the pages."""
        self._head_span = (0, len(record))
        span = locate_data(record, len(record), True, placement)
        if span is None or span == NOT_PLACEABLE:
            return
        start, size = span
        _copy_into(placement.pages, record[start : start + size])
        self.stats.copied_bytes += size
        self._head_span = (0, start)

    def _on_fragment_bytes(self) -> bool:
        assert self._rx is not None
        assert self._assembly is not None
        take = min(self._fragment_left, self._end - self._pos)
        self._assembly += self._rx.view[self._pos : self._pos + take]
        self._pos += take
        self._fragment_left -= take
        if self._fragment_left:
            return False
        self._state = _MARK
        if self._last:
            record, self._assembly = self._assembly, None
            self._deliver_assembled(record)
        return True

    def _deliver_assembled(self, record: bytearray) -> None:
        """A multi-fragment record: moved into a pool buffer of its own, then delivered."""
        if len(record) < 4:
            raise MalformedReplyError(f"RPC message of {len(record)} bytes has no XID (need 4)")
        rx = self._take(len(record))
        xid = peek_xid(record)
        if rx is None:  # no memory for it: as if lost; the call retransmits
            self._owner.drop_reply(xid)
            return
        rx.view[: len(record)] = record
        self._xid = xid
        self._decided = False
        try:
            self._complete(rx.view[: len(record)], rx)
        finally:
            rx.retire()

    def _after_parse(self) -> None:
        """Give the buffer back when drained; note the room a partial record needs."""
        rx = self._rx
        if rx is None:
            return
        if self._pos == self._end and self._state != _RECORD:
            rx.retire()  # drained: the next burst takes a fresh buffer (fresh reserve decision)
            self._rx = None
            self._pos = self._end = 0
            self._move_need = 0
        elif self._state == _MARK and rx.view.nbytes - self._pos < MARK_SIZE:
            self._move_need = MARK_SIZE


def locate_data(
    prefix: memoryview, record_len: int, complete: bool, placement: Placement
) -> tuple[int, int] | None:
    """Where a reply's bulk data lies in its record: ``(offset, length)`` in the record.

    ``prefix`` is the record's first bytes (``complete``: all of them).  None when more bytes
    are needed; :data:`NOT_PLACEABLE` for a record to receive whole: not an accepted
    ``SUCCESS`` reply, a span the placement refuses, more data than the pages hold, or bytes
    after the data other than its XDR padding (RFC 4506 §4.10).
    """
    if len(prefix) < ACCEPTED_HEADER_SIZE:
        return NOT_PLACEABLE if complete else None
    head = accepted_results_offset(prefix)
    if head < 0:
        return NOT_PLACEABLE
    span = placement.span(prefix[head:])
    if span is None:
        return NOT_PLACEABLE if complete else None
    if span == NOT_PLACEABLE:
        return span
    offset, size = span
    tail = record_len - head - offset - size
    if not 0 <= tail <= 3 or size > placement.capacity:
        return NOT_PLACEABLE
    return head + offset, size


def _copy_into(pages: Sequence[memoryview], data: memoryview) -> None:
    """Scatter ``data`` over ``pages`` from their start."""
    pos = 0
    size = data.nbytes
    for page in pages:
        n = min(page.nbytes, size - pos)
        if n <= 0:
            break
        page[:n] = data[pos : pos + n]
        pos += n


def _pieces(pages: Sequence[memoryview], size: int) -> list[memoryview]:
    """The first ``size`` bytes of ``pages`` as a list of views."""
    out: list[memoryview] = []
    left = size
    for page in pages:
        if left <= 0:
            break
        n = min(page.nbytes, left)
        out.append(page[:n] if n < page.nbytes else page)
        left -= n
    return out
