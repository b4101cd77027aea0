"""The receive layer without sockets: records split at every boundary, READ data placed in
the caller's pages, pool-counted buffers, and the SOCK_MEMALLOC rule (RFC 5531 §11 records;
``sk_filter`` / ``kmalloc_reserve`` in Linux)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from swapio_nfs._errors import RecordMarkError
from swapio_nfs._nfs3 import FATTR3_SIZE, READ3RES_HEAD_MAX, decode_read_placed, read_data_span
from swapio_nfs._receive import Placement, ReplyReceiver, RxBuffer
from swapio_nfs._record import frame
from swapio_nfs._rpc import encode_accepted_reply

from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer

PAGE = 4096


@dataclass(eq=False)
class Target:
    memalloc: bool = False
    placement: Placement | None = None
    done: bool = False

    def waiting(self) -> bool:
        return not self.done


class Owner:
    """Records what the receiver reports; keeps (pins) delivered replies when asked to."""

    def __init__(self, *, pin: bool = False) -> None:
        self.targets: dict[int, Target] = {}
        self.delivered: dict[int, bytes] = {}
        self.pfmemalloc: dict[int, bool] = {}
        self.dropped: list[int] = []
        self.unknown: list[int] = []
        self.pins: list[RxBuffer] = []
        self._pin = pin

    def target(self, xid: int) -> Target | None:
        t = self.targets.get(xid)
        return t if t is not None and t.waiting() else None

    def deliver(self, xid: int, record: memoryview, pin: RxBuffer | None) -> None:
        self.delivered[xid] = bytes(record)
        self.pfmemalloc[xid] = pin is not None and pin.pfmemalloc
        self.targets[xid].done = True
        if self._pin and pin is not None:
            pin.pin()
            self.pins.append(pin)

    def drop_reply(self, xid: int) -> None:
        self.dropped.append(xid)

    def unknown_reply(self, xid: int) -> None:
        self.unknown.append(xid)


def receiver(pool: PagePool, owner: Owner, *, sock_memalloc: bool = True) -> ReplyReceiver:
    return ReplyReceiver(pool, owner, sock_memalloc=sock_memalloc, max_record=1 << 21)


def feed(rx: ReplyReceiver, stream: bytes, cuts: list[int]) -> None:
    """Deliver ``stream`` as a socket would, with reads ending at each of ``cuts``."""
    pos = 0
    for end in [*sorted(cuts), len(stream)]:
        while pos < end:
            views = rx.buffers()
            assert views, "the receiver found no memory"
            n = 0
            for view in views:
                k = min(view.nbytes, end - pos - n)
                view[:k] = stream[pos + n : pos + n + k]
                n += k
                if pos + n == end:
                    break
            rx.received(n)
            pos += n


def reply(xid: int, results: bytes) -> bytes:
    return frame(encode_accepted_reply(xid, results))


def read3resok(data: bytes, *, attributes: bool = True, eof: bool = False) -> bytes:
    head = struct.pack(">II", 0, 1 if attributes else 0)
    if attributes:
        head += bytes(FATTR3_SIZE)
    pad = b"\0" * (-len(data) % 4)
    return head + struct.pack(">III", len(data), eof, len(data)) + data + pad


def read_target(pages: list[memoryview]) -> Target:
    total = sum(p.nbytes for p in pages)
    return Target(
        placement=Placement(lambda r: read_data_span(r, total), pages, READ3RES_HEAD_MAX, total)
    )


# ----------------------------------------------------------------- records


def test_records_split_at_every_boundary_are_delivered_whole() -> None:
    payloads = {7: b"a" * 13, 8: b"", 9: bytes(range(200))}
    stream = b"".join(reply(x, p) for x, p in payloads.items())
    for cut in range(1, len(stream)):
        pool = PagePool(64, PAGE)
        owner = Owner()
        owner.targets = {x: Target() for x in payloads}
        feed(receiver(pool, owner), stream, [cut])
        assert {x: r[24:] for x, r in owner.delivered.items()} == payloads
        assert pool.accounting().buffers_outstanding == 0  # drained buffers went back


def test_a_mixed_stream_fed_one_byte_at_a_time() -> None:
    data = bytes(range(256)) * 16
    page = memoryview(bytearray(PAGE))
    stream = (
        reply(1, b"small")
        + reply(2, read3resok(data))
        + frame(encode_accepted_reply(3, b"in fragments"), max_fragment=5)
    )
    owner = Owner()
    owner.targets = {1: Target(), 2: read_target([page]), 3: Target()}
    pool = PagePool(64, PAGE)
    feed(receiver(pool, owner), stream, list(range(1, len(stream))))
    assert owner.delivered[1][24:] == b"small"
    assert bytes(page) == data
    assert owner.delivered[3][24:] == b"in fragments"
    assert pool.accounting().buffers_outstanding == 0


def test_a_delivered_reply_pins_its_buffer_until_unpinned() -> None:
    pool = PagePool(64, PAGE)
    owner = Owner(pin=True)
    owner.targets = {1: Target(), 2: Target()}
    feed(receiver(pool, owner), reply(1, b"x" * 8) + reply(2, b"y" * 8), [])
    assert pool.accounting().buffers_outstanding == 1  # both replies share one buffer
    owner.pins[0].unpin()
    assert pool.accounting().buffers_outstanding == 1
    owner.pins[1].unpin()
    assert pool.accounting().buffers_outstanding == 0


def test_fragmented_record_is_reassembled() -> None:
    message = encode_accepted_reply(5, b"fragmented results!!")
    pool = PagePool(64, PAGE)
    owner = Owner()
    owner.targets = {5: Target()}
    feed(receiver(pool, owner), frame(message, max_fragment=7), [3, 11, 20])
    assert owner.delivered[5] == message
    assert pool.accounting().buffers_outstanding == 0


def test_a_reply_to_no_call_is_skipped_without_buffering_it() -> None:
    pool = PagePool(64, PAGE)  # 64 pages: a 1 MiB record could never be buffered whole
    owner = Owner()
    owner.targets = {2: Target()}
    big = reply(1, bytes(1 << 20))
    feed(receiver(pool, owner), big + reply(2, b"next"), list(range(0, len(big), 60000)))
    assert owner.unknown == [1]
    assert owner.delivered[2][24:] == b"next"
    assert pool.snapshot().peak_used_pages <= 16  # one ordinary receive buffer at a time


def test_a_record_mark_above_the_maximum_is_refused() -> None:
    rx = ReplyReceiver(PagePool(64, PAGE), Owner(), sock_memalloc=False, max_record=1000)
    with pytest.raises(RecordMarkError, match="maximum is 1000"):
        feed(rx, struct.pack(">I", 0x80000000 | 1001), [])


# ----------------------------------------------------------------- placement


@pytest.mark.parametrize("attributes", [True, False])
def test_read_data_is_placed_in_the_callers_pages_at_every_split(attributes: bool) -> None:
    data = bytes(range(256)) * 32  # two 4 KiB pages
    stream = reply(3, read3resok(data, attributes=attributes))
    for cut in range(1, len(stream), 37):
        pages = [memoryview(bytearray(PAGE)), memoryview(bytearray(PAGE))]
        owner = Owner()
        owner.targets = {3: read_target(pages)}
        feed(receiver(PagePool(64, PAGE), owner), stream, [cut])
        assert b"".join(pages) == data
        count, eof, inline = decode_read_placed(owner.delivered[3][24:], 2 * PAGE)
        assert (count, eof, inline.nbytes) == (2 * PAGE, False, 0)


def test_read_data_after_its_header_goes_straight_into_the_pages() -> None:
    data = b"\xab" * PAGE
    stream = reply(4, read3resok(data))
    header = 4 + 24 + READ3RES_HEAD_MAX
    pages = [memoryview(bytearray(PAGE))]
    owner = Owner()
    owner.targets = {4: read_target(pages)}
    rx = receiver(PagePool(64, PAGE), owner)
    feed(rx, stream, [header + 100])  # the header and 100 data bytes, then the rest
    assert bytes(pages[0]) == data
    assert rx.stats.copied_bytes == 100  # only what arrived with the header was copied
    assert rx.stats.placed_bytes == PAGE - 100


def test_a_read_that_ended_mid_stream_gets_no_more_bytes_in_its_pages() -> None:
    stream = reply(6, read3resok(b"\x11" * PAGE)) + reply(7, b"after")
    page = memoryview(bytearray(PAGE))
    owner = Owner()
    target = read_target([page])
    owner.targets = {6: target, 7: Target()}
    rx = receiver(PagePool(64, PAGE), owner)
    header = 4 + 24 + READ3RES_HEAD_MAX
    feed(rx, stream[: header + 10], [])
    target.done = True  # the call timed out; its caller may reuse the page now
    feed(rx, stream[header + 10 :], [])
    assert bytes(page[10:]) == bytes(PAGE - 10)
    assert 6 not in owner.delivered
    assert owner.delivered[7][24:] == b"after"


def test_an_error_reply_to_a_read_is_received_whole() -> None:
    nfs3err_io = struct.pack(">II", 5, 0)
    page = memoryview(bytearray(PAGE))
    owner = Owner()
    owner.targets = {8: read_target([page])}
    feed(receiver(PagePool(64, PAGE), owner), reply(8, nfs3err_io), [])
    assert owner.delivered[8][24:] == nfs3err_io
    assert bytes(page) == bytes(PAGE)


# ----------------------------------------------------------------- SOCK_MEMALLOC


def squeeze(pool: PagePool, leave: int) -> list[PoolBuffer]:
    """Memalloc work takes the pool down to ``leave`` free pages (below *min*)."""
    with memalloc():
        hog = [pool.try_alloc(PAGE) for _ in range(pool.free_pages - leave)]
    return [b for b in hog if b is not None]


def test_reply_in_a_reserve_buffer_is_dropped_for_ordinary_work_kept_for_memalloc() -> None:
    pool = PagePool(64, PAGE, min_pages=8, low_pages=12, high_pages=16)
    hog = squeeze(pool, 4)
    owner = Owner()
    owner.targets = {1: Target(memalloc=False), 2: Target(memalloc=True)}
    rx = receiver(pool, owner)
    feed(rx, reply(1, b"ordinary") + reply(2, b"memalloc"), [])
    assert owner.dropped == [1]
    assert owner.delivered == {2: encode_accepted_reply(2, b"memalloc")}
    assert owner.pfmemalloc[2]
    assert rx.stats.reserve_buffers == 1
    assert pool.snapshot().pfmemalloc_pages == sum(b.pages for b in hog if b.pfmemalloc)
    for buf in hog:
        buf.release()


def test_receive_buffers_are_ordinary_when_memory_is_plentiful() -> None:
    pool = PagePool(64, PAGE, min_pages=8, low_pages=12, high_pages=16)
    owner = Owner()
    owner.targets = {1: Target(memalloc=False)}
    rx = receiver(pool, owner)
    feed(rx, reply(1, b"fine"), [])
    assert owner.delivered[1][24:] == b"fine"
    assert rx.stats.reserve_buffers == 0


def test_a_socket_that_serves_no_swap_never_takes_the_reserve() -> None:
    pool = PagePool(64, PAGE, min_pages=8, low_pages=12, high_pages=16)
    hog = squeeze(pool, 4)
    rx = receiver(pool, Owner(), sock_memalloc=False)
    assert rx.buffers() == []  # the receive window closes instead
    assert pool.snapshot().pfmemalloc_pages == sum(b.pages for b in hog if b.pfmemalloc)
    for buf in hog:
        buf.release()


async def test_the_receive_window_reopens_when_memory_returns() -> None:
    pool = PagePool(64, PAGE, min_pages=8, low_pages=12, high_pages=16)
    hog = squeeze(pool, 0)
    owner = Owner()
    owner.targets = {1: Target(memalloc=True)}
    rx = receiver(pool, owner)
    assert rx.buffers() == []
    hog.pop().release()
    await rx.wait_for_memory()
    feed(rx, reply(1, b"back"), [])
    assert owner.delivered[1][24:] == b"back"
    for buf in hog:
        buf.release()
