"""In-doubt WRITEs (docs/nfs.md, "In-doubt WRITEs"), against the fake NFS server.

A WRITE whose reply never arrived may still be executed by the server later.  The client keeps
retransmitting it with the same XID until a reply arrives, and a later WRITE of an overlapping
range is not sent before then, so the server can never apply the old data over the new.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from swapio_nfs._backend import MAX_IN_DOUBT_BYTES, NfsSwapFile
from swapio_nfs._client import NfsClient
from swapio_nfs._errors import RpcConnectionError, RpcTimeoutError
from swapio_nfs._fence import DoubtRanges
from swapio_nfs._nfs3 import Fattr3, Ftype3, NfsTime3
from swapio_nfs._rpc import AuthSys
from swapio_nfs._transport import RetryPolicy, RpcConnection
from swapio_nfs._url import parse_nfs_url

from swapio.testing.conformance import page_pattern

from .fakenfs import FakeNfsFile
from .fakeserver import FakeRpcServer

PAGE = 4096
PAGES = 8
#: a caller gives up after 0.05 + 7 × 0.1 s (also the longest a newer WRITE waits for an
#: in-doubt one); an in-doubt call is sent again every 0.1 s
POLICY = RetryPolicy(timeout=0.05, retrans=7, max_timeout=0.1, backoff_initial=0.01)

OLD = page_pattern(0, 1, PAGE)
NEW = page_pattern(0, 2, PAGE)


class Setup:
    def __init__(self, nfs: FakeNfsFile, server: FakeRpcServer, swap: NfsSwapFile) -> None:
        self.nfs = nfs
        self.server = server
        self.swap = swap
        self.conn = swap.client.conn

    async def read(self, slot: int) -> bytes:
        page = bytearray(PAGE)
        await self.swap.swap_in(slot, [memoryview(page)])
        return bytes(page)


@pytest.fixture
async def fake() -> AsyncIterator[Setup]:
    nfs = FakeNfsFile(PAGES * PAGE)
    async with FakeRpcServer(nfs.handle) as server:
        conn = RpcConnection("127.0.0.1", server.port, policy=POLICY, name="NFS")
        await conn.connect()
        client = NfsClient("127.0.0.1", "/e", b"root", [conn], AuthSys().credential(), 0)
        attrs = Fattr3(
            Ftype3.NF3REG, 0o600, 1, 0, 0, PAGES * PAGE, PAGES * PAGE, (0, 0), 1, 1,
            NfsTime3(), NfsTime3(), NfsTime3(),
        )  # fmt: skip
        url = parse_nfs_url(f"nfs://127.0.0.1/e/f?nfsport={server.port}")
        swap = NfsSwapFile(url, client, b"fh", attrs, PAGES, 1 << 20)
        try:
            yield Setup(nfs, server, swap)
        finally:
            await conn.close()


async def test_a_timed_out_write_executed_late_does_not_overwrite_a_newer_write(
    fake: Setup,
) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)  # the server stalls on the first WRITE of slot 0
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [OLD])
    (old_xid,) = nfs.held
    # the pager writes the slot again: the swap-out is started while the old WRITE is unanswered
    sent = nfs.copies(old_xid)
    newer = asyncio.ensure_future(fake.swap.swap_out(0, [NEW]))
    await nfs.wait_for(
        lambda: any(w.data == NEW for w in nfs.received) or nfs.copies(old_xid) >= sent + 1
    )
    nfs.release(old_xid)  # the stalled server thread runs the old WRITE after all
    await asyncio.wait_for(newer, 10)
    assert await fake.read(0) == NEW
    # the newer WRITE reached the server only after the old one was executed
    arrivals = [w.xid for w in nfs.received if w.data == NEW]
    assert arrivals, "the newer WRITE was never sent"
    assert [w.data for w in nfs.executed] == [OLD, NEW]
    # it was sent again after its caller had failed, every copy with its XID, so that the
    # server's cache could recognise each one
    assert nfs.copies(old_xid) > sent
    assert {w.xid for w in nfs.received if w.data == OLD} == {old_xid}


async def test_the_newer_write_is_not_sent_while_the_old_one_is_unanswered(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [OLD])
    (old_xid,) = nfs.held
    sent = nfs.copies(old_xid)
    newer = asyncio.ensure_future(fake.swap.swap_out(0, [NEW]))
    await nfs.wait_for(lambda: nfs.copies(old_xid) >= sent + 1)  # still being sent
    assert not newer.done()
    assert [w.data for w in nfs.received if w.data == NEW] == []
    assert fake.swap.doubt_waits == 1
    nfs.release(old_xid)
    await asyncio.wait_for(newer, 10)
    assert fake.conn.in_doubt == 0
    assert fake.conn.doubts_settled == 1


async def test_a_write_of_another_range_is_not_delayed(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [OLD])
    await fake.swap.swap_out(1, [page_pattern(1, 2, PAGE)])  # slot 1 does not overlap slot 0
    assert await fake.read(1) == page_pattern(1, 2, PAGE)
    assert fake.swap.doubt_waits == 0
    assert fake.conn.in_doubt == 1


async def test_a_newer_write_waits_one_retry_budget_then_fails_without_being_sent(
    fake: Setup,
) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [OLD])
    (old_xid,) = nfs.held
    with pytest.raises(RpcTimeoutError, match=rf"not sent: the earlier WRITE \(xid {old_xid:#x}\)"):
        await fake.swap.swap_out(0, [NEW])
    assert [w for w in nfs.received if w.data == NEW] == []
    assert fake.conn.in_doubt == 1  # still sent again: the server may yet execute it
    nfs.release(old_xid)
    await fake.swap.swap_out(0, [NEW])  # the pager's next try goes through
    assert await fake.read(0) == NEW
    assert [w.data for w in nfs.executed] == [OLD, NEW]


async def test_a_cancelled_swap_out_leaves_its_sent_write_in_doubt(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    first = asyncio.ensure_future(fake.swap.swap_out(0, [OLD]))
    await nfs.wait_for(lambda: bool(nfs.held))  # the server has the WRITE
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    (old_xid,) = nfs.held
    assert fake.conn.in_doubt == 1
    sent = nfs.copies(old_xid)
    newer = asyncio.ensure_future(fake.swap.swap_out(0, [NEW]))
    await nfs.wait_for(lambda: nfs.copies(old_xid) >= sent + 1)
    assert not newer.done()
    nfs.release(old_xid)
    await asyncio.wait_for(newer, 10)
    assert await fake.read(0) == NEW
    assert [w.data for w in nfs.executed] == [OLD, NEW]


async def test_a_write_whose_connection_broke_is_sent_again_on_the_new_one_and_still_ordered(
    fake: Setup,
) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    first = asyncio.ensure_future(fake.swap.swap_out(0, [OLD]))
    await nfs.wait_for(lambda: bool(nfs.held))
    (old_xid,) = nfs.held
    nfs.held[old_xid][1].reset()  # the connection breaks before the reply
    with pytest.raises((RpcTimeoutError, RpcConnectionError)):
        await first
    await nfs.wait_for(lambda: fake.server.connections >= 2)
    sent = nfs.copies(old_xid)
    newer = asyncio.ensure_future(fake.swap.swap_out(0, [NEW]))
    await nfs.wait_for(lambda: nfs.copies(old_xid) >= sent + 1)
    assert not newer.done()
    nfs.release(old_xid)  # answered on the connection the latest copy came on: the new one
    await asyncio.wait_for(newer, 10)
    assert await fake.read(0) == NEW
    assert [w.data for w in nfs.executed] == [OLD, NEW]
    assert fake.conn.reconnects >= 1


async def test_copies_sent_after_the_caller_left_carry_the_bytes_first_sent(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    page = bytearray(OLD)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [memoryview(page)])
    page[:] = NEW  # the caller reuses its page once the swap-out has failed
    (old_xid,) = nfs.held
    sent = nfs.copies(old_xid)
    await nfs.wait_for(lambda: nfs.copies(old_xid) >= sent + 2)
    assert {w.data for w in nfs.received if w.xid == old_xid} == {OLD}


async def test_deactivation_waits_for_an_in_doubt_write_to_be_answered(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.swap_out(0, [OLD])
    (old_xid,) = nfs.held
    sent = nfs.copies(old_xid)
    closing = asyncio.ensure_future(fake.swap.deactivate())
    await nfs.wait_for(lambda: nfs.copies(old_xid) >= sent + 1)
    assert not closing.done()
    nfs.release(old_xid)
    await asyncio.wait_for(closing, 10)
    assert fake.conn.doubts_settled == 1  # answered before the connection was closed


async def test_in_doubt_copies_are_bounded_new_writes_wait_for_room() -> None:
    mib = 1 << 20
    pages_per_mib = mib // PAGE
    nfs = FakeNfsFile(16 * mib)
    # in-doubt copies of 1 MiB are sent again after 0.4, 0.8, 1.6 ... s, not every 0.1 s: the
    # fake server has to read every copy
    policy = RetryPolicy(timeout=0.05, retrans=3, max_timeout=5, backoff_initial=0.01)
    async with FakeRpcServer(nfs.handle) as server:
        conn = RpcConnection("127.0.0.1", server.port, policy=policy, name="NFS")
        await conn.connect()
        client = NfsClient("127.0.0.1", "/e", b"root", [conn], AuthSys().credential(), 0)
        attrs = Fattr3(
            Ftype3.NF3REG, 0o600, 1, 0, 0, 16 * mib, 16 * mib, (0, 0), 1, 1,
            NfsTime3(), NfsTime3(), NfsTime3(),
        )  # fmt: skip
        swap = NfsSwapFile(parse_nfs_url("nfs://h/e/f"), client, b"fh", attrs, 16 * 256, mib)
        try:
            stalled = MAX_IN_DOUBT_BYTES // mib  # 1 MiB WRITEs the server sits on
            for n in range(stalled):
                nfs.hold_next_write(n * mib)
            data = [bytes(PAGE)] * pages_per_mib
            failed = await asyncio.gather(
                *(swap.swap_out(n * pages_per_mib, data) for n in range(stalled)),
                return_exceptions=True,
            )
            assert all(isinstance(f, RpcTimeoutError) for f in failed), failed
            assert conn.in_doubt == stalled
            # a WRITE of a range nobody holds still waits: the copies are at their bound
            far = 15 * pages_per_mib
            with pytest.raises(RpcTimeoutError, match=f"not sent: {stalled} earlier WRITEs"):
                await swap.swap_out(far, [NEW])
            assert [w for w in nfs.received if w.data == NEW] == []
            nfs.release(next(iter(nfs.held)))  # one is answered: room for one more
            await swap.swap_out(far, [NEW])
            assert await read_page(swap, far) == NEW
        finally:
            await conn.close()


async def read_page(swap: NfsSwapFile, slot: int) -> bytes:
    page = bytearray(PAGE)
    await swap.swap_in(slot, [memoryview(page)])
    return bytes(page)


# ---------------------------------------------------------------- the transport alone


async def test_closing_the_connection_fails_an_in_doubt_call(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    seen: list[tuple[int, asyncio.Future[None]]] = []
    with pytest.raises(RpcTimeoutError):
        await fake.swap.client.write(
            b"fh", 0, [OLD], on_doubt=lambda xid, settled: seen.append((xid, settled))
        )
    ((xid, settled),) = seen
    assert xid in nfs.held
    assert not settled.done()
    await fake.conn.close()
    with pytest.raises(RpcConnectionError, match="was closed"):
        await settled
    assert fake.conn.outstanding == 0


async def test_a_call_without_on_doubt_is_forgotten_when_its_caller_gives_up(fake: Setup) -> None:
    nfs = fake.nfs
    nfs.hold_next_write(0)
    with pytest.raises(RpcTimeoutError):
        await fake.swap.client.write(b"fh", 0, [OLD])
    assert fake.conn.outstanding == 0
    assert fake.conn.doubts == 0


# ---------------------------------------------------------------- the range table (sans-I/O)


def test_ranges_overlap_when_they_share_a_byte() -> None:
    table: DoubtRanges[str] = DoubtRanges()
    table.add(4096, 8192, "slot 1")
    assert table.overlapping(0, 4096) == []  # adjacent, no common byte
    assert table.overlapping(8192, 12288) == []
    assert table.overlapping(8191, 8192) == ["slot 1"]
    assert table.overlapping(0, 1 << 20) == ["slot 1"]


def test_removing_a_range_releases_it_once() -> None:
    table: DoubtRanges[str] = DoubtRanges()
    a = table.add(0, 4096, "a")
    table.add(0, 8192, "b")
    assert (table.count, table.nbytes) == (2, 12288)
    table.remove(a)
    table.remove(a)
    assert (table.count, table.nbytes) == (1, 8192)
    assert table.overlapping(0, 4096) == ["b"]


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="not a byte range"):
        DoubtRanges[str]().add(10, 10, "x")
