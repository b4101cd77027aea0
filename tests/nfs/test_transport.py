"""The asyncio RPC transport against a scriptable fake server (the real server is ganesha,
in test_real_server.py): XID matching, retransmission, timeouts, reconnect, bad replies,
and reply buffers from the page pool under the SOCK_MEMALLOC rule."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import struct

import pytest
from swapio_nfs._errors import (
    MalformedReplyError,
    ProcUnavailError,
    RecordMarkError,
    RpcConnectionError,
    RpcError,
    RpcTimeoutError,
)
from swapio_nfs._rpc import AUTH_NONE, AcceptStat, AuthSys, Call, encode_accepted_reply
from swapio_nfs._transport import RetryPolicy, RpcConnection

from swapio.errors import RemoteProtocolError
from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer

from .fakeserver import FakeConn, FakeRpcServer

FAST = RetryPolicy(timeout=0.2, retrans=2, max_timeout=0.4, backoff_initial=0.01)


def conn_to(server: FakeRpcServer, **kw: object) -> RpcConnection:
    return RpcConnection("127.0.0.1", server.port, policy=kw.pop("policy", FAST), **kw)  # type: ignore[arg-type]


async def call_bytes(conn: RpcConnection, args: bytes, **kw: object) -> bytes:
    with await conn.call(1, 1, 1, args, **kw) as res:  # type: ignore[arg-type]
        return bytes(res.results)


async def test_many_outstanding_calls_are_matched_by_xid_out_of_order() -> None:
    async def reverse_delay(call: Call, conn: FakeConn) -> bytes:
        (n,) = struct.unpack(">I", call.args)
        await asyncio.sleep(0.002 * (20 - n))  # later calls answered first
        return encode_accepted_reply(call.xid, bytes(call.args))

    async with FakeRpcServer(reverse_delay) as server:
        conn = conn_to(server)
        await conn.connect()
        args = [struct.pack(">I", n) for n in range(20)]
        results = await asyncio.gather(*(call_bytes(conn, a) for a in args))
        assert results == args
        assert server.connections == 1
        assert len({c.xid for c in server.calls}) == 20
        await conn.close()


async def test_unanswered_call_is_retransmitted_with_the_same_xid() -> None:
    seen: list[int] = []

    async def answer_second(call: Call, conn: FakeConn) -> bytes | None:
        seen.append(call.xid)
        return None if len(seen) == 1 else encode_accepted_reply(call.xid, b"ok!!")

    async with FakeRpcServer(answer_second) as server:
        conn = conn_to(server)
        assert await call_bytes(conn, b"") == b"ok!!"
        assert len(seen) == 2
        assert seen[0] == seen[1]
        assert conn.retransmissions == 1
        await conn.close()


async def test_a_server_that_stops_answering_gives_a_timeout_error() -> None:
    async def silent(call: Call, conn: FakeConn) -> None:
        return None

    async with FakeRpcServer(silent) as server:
        conn = conn_to(server)
        with pytest.raises(RpcTimeoutError, match="no reply after 3 transmissions"):
            await call_bytes(conn, b"")
        assert len(server.calls) == 3
        assert conn.outstanding == 0
        await conn.close()


async def test_connection_reset_reconnects_and_resends_pending_calls() -> None:
    resets = 0

    async def reset_once(call: Call, conn: FakeConn) -> bytes | None:
        nonlocal resets
        if resets == 0:
            resets += 1
            conn.reset()
            return None
        return encode_accepted_reply(call.xid, bytes(call.args))

    async with FakeRpcServer(reset_once) as server:
        conn = conn_to(server)
        assert await call_bytes(conn, b"data") == b"data"
        assert server.connections == 2
        assert server.calls[0].xid == server.calls[1].xid
        assert conn.reconnects == 1
        await conn.close()


async def test_reply_with_an_unknown_xid_is_ignored() -> None:
    async def wrong_then_right(call: Call, conn: FakeConn) -> bytes:
        conn.reply(encode_accepted_reply(call.xid ^ 0xFFFF, b"evil"))
        return encode_accepted_reply(call.xid, b"good")

    async with FakeRpcServer(wrong_then_right) as server:
        conn = conn_to(server)
        assert await call_bytes(conn, b"") == b"good"
        assert conn.unknown_xids == 1
        await conn.close()


async def test_malformed_reply_fails_only_its_call() -> None:
    async def garble_first(call: Call, conn: FakeConn) -> bytes:
        if call.args == b"bad!":
            return struct.pack(">III", call.xid, 1, 7)  # reply_stat 7
        await asyncio.sleep(0.01)
        return encode_accepted_reply(call.xid, b"fine")

    async with FakeRpcServer(garble_first) as server:
        conn = conn_to(server)
        bad, good = await asyncio.gather(
            call_bytes(conn, b"bad!"), call_bytes(conn, b"good"), return_exceptions=True
        )
        assert isinstance(bad, MalformedReplyError)
        assert "unknown reply_stat 7" in str(bad)
        assert good == b"fine"
        await conn.close()


async def test_server_error_status_is_raised_for_its_call() -> None:
    async def no_proc(call: Call, conn: FakeConn) -> bytes:
        return encode_accepted_reply(call.xid, b"", AcceptStat.PROC_UNAVAIL)

    async with FakeRpcServer(no_proc) as server:
        conn = conn_to(server)
        with pytest.raises(ProcUnavailError):
            await call_bytes(conn, b"")
        await conn.close()


async def test_oversized_record_mark_fails_pending_calls_and_the_connection_recovers() -> None:
    async def huge(call: Call, conn: FakeConn) -> bytes | None:
        if call.args == b"huge":
            conn.raw(b"\xff\xff\xff\xff")
            return None
        return encode_accepted_reply(call.xid, b"next")

    async with FakeRpcServer(huge) as server:
        conn = conn_to(server, max_record=4096)
        with pytest.raises(RecordMarkError, match="maximum is 4096"):
            await call_bytes(conn, b"huge")
        assert await call_bytes(conn, b"more") == b"next"
        assert server.connections == 2
        await conn.close()


async def test_truncated_reply_then_close_is_retried_on_a_new_connection() -> None:
    first = True

    async def truncate_once(call: Call, conn: FakeConn) -> bytes | None:
        nonlocal first
        if first:
            first = False
            conn.raw(b"\x80\x00\x00\x20\x00\x00")  # mark says 32 bytes, 2 arrive
            await asyncio.sleep(0.01)
            conn.reset()
            return None
        return encode_accepted_reply(call.xid, b"done")

    async with FakeRpcServer(truncate_once) as server:
        conn = conn_to(server)
        assert await call_bytes(conn, b"") == b"done"
        await conn.close()


async def test_refused_connection_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        conn = RpcConnection("127.0.0.1", port, policy=FAST, name="NFS")
        with pytest.raises(
            RpcConnectionError, match=f"cannot connect to NFS server 127.0.0.1:{port}"
        ):
            await conn.connect()


async def test_unresolvable_host_is_a_clear_error() -> None:
    conn = RpcConnection("no-such-host.invalid", 2049, policy=FAST)
    with pytest.raises(RpcConnectionError, match="cannot resolve"):
        await conn.connect()


async def test_a_reply_pins_its_pool_receive_buffer_until_released() -> None:
    pool = PagePool(64, 4096)
    async with FakeRpcServer() as server:
        conn = conn_to(server, pool=pool)
        res = await conn.call(1, 1, 1, b"x" * 5000)
        assert pool.accounting().buffers_outstanding == 1  # the receive buffer it lives in
        assert bytes(res.results) == b"x" * 5000
        res.release()
        assert pool.accounting().buffers_outstanding == 0
        assert conn.receive.buffers_taken >= 1
        await conn.close()


def squeezed_pool() -> tuple[PagePool, list[PoolBuffer]]:
    """A pool taken below *min* by memalloc work: only the reserve is left."""
    pool = PagePool(64, 4096, min_pages=8, low_pages=12, high_pages=16)
    with memalloc():
        hog = [pool.try_alloc(4096) for _ in range(58)]
    return pool, [b for b in hog if b is not None]


def swap_conn(server: FakeRpcServer, pool: PagePool, **kw: object) -> RpcConnection:
    """A connection serving a swap area (SOCK_MEMALLOC): its receive buffers may dip."""
    return conn_to(server, pool=pool, sock_memalloc=True, **kw)


async def test_memalloc_call_keeps_a_reply_that_landed_in_the_reserve() -> None:
    pool, hog = squeezed_pool()
    async with FakeRpcServer() as server:
        conn = swap_conn(server, pool)
        await conn.connect()
        with memalloc():
            res = await conn.call(1, 1, 1, b"y" * 100)
        assert res.pfmemalloc
        assert bytes(res.results) == b"y" * 100
        assert conn.dropped_replies == 0
        res.release()
        await conn.close()
    for buf in hog:
        buf.release()
    assert pool.accounting().buffers_outstanding == 0


async def test_ordinary_call_waits_for_memory_before_it_is_sent() -> None:
    pool, hog = squeezed_pool()
    async with FakeRpcServer() as server:
        conn = swap_conn(server, pool, policy=RetryPolicy(timeout=5))
        await conn.connect()
        task = asyncio.ensure_future(conn.call(1, 1, 1, b"z" * 100))
        await asyncio.sleep(0.05)
        assert not task.done()
        assert server.calls == []  # not even sent: its reply could only land in the reserve
        for buf in hog:
            buf.release()
        res = await asyncio.wait_for(task, 5)
        assert not res.pfmemalloc
        assert bytes(res.results) == b"z" * 100
        res.release()
        assert pool.accounting().buffers_outstanding == 0
        await conn.close()


async def test_ordinary_reply_that_lands_in_the_reserve_is_dropped_and_asked_again() -> None:
    """SOCK_MEMALLOC: memory runs out between the call and its reply; the reply is received
    into a reserve buffer, dropped (the reserve goes back at once), and the call is sent
    again, same XID, only once ordinary memory is back."""
    pool = PagePool(64, 4096, min_pages=8, low_pages=12, high_pages=16)
    replied = asyncio.Event()
    release_reply = asyncio.Event()
    xids: list[int] = []

    async def late(call: Call, conn: FakeConn) -> bytes:
        xids.append(call.xid)
        if len(xids) == 1:
            await release_reply.wait()
        replied.set()
        return encode_accepted_reply(call.xid, b"late")

    async with FakeRpcServer(late) as server:
        conn = swap_conn(server, pool, policy=RetryPolicy(timeout=5))
        await conn.connect()
        task = asyncio.ensure_future(call_bytes(conn, b""))
        await asyncio.sleep(0.05)
        assert xids  # sent while memory was plentiful
        with memalloc():  # memalloc work takes everything down into the reserve
            hog = [b for b in (pool.try_alloc(4096) for _ in range(60)) if b is not None]
        assert 0 < pool.free_pages < pool.min_pages  # only the reserve is left
        release_reply.set()
        await replied.wait()
        await asyncio.sleep(0.05)
        assert conn.dropped_replies == 1
        assert not task.done()  # the reply was not kept
        assert pool.snapshot().pfmemalloc_pages == sum(b.pages for b in hog if b.pfmemalloc)
        assert len(xids) == 1  # and not asked again while memory is short
        for buf in hog:
            buf.release()
        assert await asyncio.wait_for(task, 5) == b"late"
        assert xids == [xids[0], xids[0]]
        assert conn.receive.reserve_buffers >= 1
        await conn.close()
    assert pool.accounting().buffers_outstanding == 0


@pytest.mark.parametrize("seed", range(40))
async def test_garbage_from_the_server_ends_the_call_cleanly(seed: int) -> None:
    rng = random.Random(seed)

    async def garbage(call: Call, conn: FakeConn) -> None:
        body = rng.randbytes(rng.randrange(0, 64))
        mode = rng.randrange(4)
        if mode == 0:  # random bytes, no framing at all
            conn.raw(rng.randbytes(rng.randrange(1, 64)))
        elif mode == 1:  # a framed record starting with the right XID, then garbage
            conn.reply(struct.pack(">I", call.xid) + body)
        elif mode == 2:  # a plausible header with random status words
            conn.reply(struct.pack(">III", call.xid, 1, rng.randrange(3)) + body)
        else:  # a record mark that lies about the length, then a reset
            conn.raw(struct.pack(">I", rng.randrange(2**32)) + body)
            conn.reset()

    async with FakeRpcServer(garbage) as server:
        policy = RetryPolicy(timeout=0.05, retrans=1, max_timeout=0.1, backoff_initial=0.01)
        conn = conn_to(server, policy=policy, max_record=1 << 16)
        try:
            async with asyncio.timeout(10):  # never hangs
                with await conn.call(1, 1, 1, b"") as res:
                    assert isinstance(bytes(res.results), bytes)
        except (RemoteProtocolError, RpcError, RpcTimeoutError, RpcConnectionError):
            pass  # a clean, typed failure
        finally:
            await conn.close()


async def test_concurrent_first_calls_share_one_connection() -> None:
    async with FakeRpcServer() as server:
        conn = conn_to(server)
        results = await asyncio.gather(*(call_bytes(conn, bytes([n]) * 4) for n in range(10)))
        assert results == [bytes([n]) * 4 for n in range(10)]
        assert server.connections == 1
        await conn.close()


async def test_calls_made_while_disconnected_wait_for_the_reconnect() -> None:
    async with FakeRpcServer() as server:
        conn = conn_to(server, policy=RetryPolicy(timeout=1, retrans=3, backoff_initial=0.01))
        assert await call_bytes(conn, b"one!") == b"one!"
        conn.abort()
        await asyncio.sleep(0.01)
        assert not conn.connected
        assert await call_bytes(conn, b"two!") == b"two!"
        assert conn.reconnects == 1
        await conn.close()


async def test_first_connection_failure_is_immediate() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        conn = RpcConnection("127.0.0.1", s.getsockname()[1], policy=FAST)
        with pytest.raises(RpcConnectionError, match="Connection refused"):
            await call_bytes(conn, b"")


async def test_each_call_carries_the_credential_it_was_made_with() -> None:
    """Call headers are pre-encoded per procedure; a call with another credential on the same
    connection must not reuse a header that carries the previous one."""
    alice = AuthSys(uid=1000, gid=1000).credential()
    bob = AuthSys(uid=2000, gid=2000).credential()
    async with FakeRpcServer() as server:
        conn = conn_to(server)
        await conn.connect()
        for cred in (alice, bob, alice, AUTH_NONE):
            await call_bytes(conn, b"\0\0\0\1", cred=cred)
        assert [c.cred for c in server.calls] == [alice, bob, alice, AUTH_NONE]
        await conn.close()


async def reset_first_call(call: Call, conn: FakeConn) -> bytes | None:
    if call.args == b"reset":
        conn.reset()
        return None
    return encode_accepted_reply(call.xid, bytes(call.args))


async def test_a_reconnect_comes_from_the_same_source_port_when_asked() -> None:
    async with FakeRpcServer(reset_first_call) as server:
        conn = conn_to(server, reuse_port=True)
        await conn.connect()
        with pytest.raises((RpcTimeoutError, RpcConnectionError)):
            await call_bytes(conn, b"reset")  # reset by the server at every transmission
        assert await call_bytes(conn, b"after") == b"after"
        ports = [port for _, port in server.peers]
        assert server.connections >= 2
        # the server's cache keys calls by address and port: each reconnect comes from the last
        # connection's port, except where the kernel would not give it (counted; a reconnect
        # racing the reset's teardown on a loaded machine)
        changes = sum(a != b for a, b in itertools.pairwise(ports))
        assert changes == conn.port_changes
        assert changes <= len(ports) // 4
        assert ports[-1] == conn.local_port
        await conn.close()


async def test_a_reconnect_after_our_own_abort_comes_from_the_same_source_port() -> None:
    async with FakeRpcServer() as server:
        conn = conn_to(server, reuse_port=True)
        assert await call_bytes(conn, b"one") == b"one"
        conn.abort()  # a reset, no TIME_WAIT: the port is free at once
        assert await call_bytes(conn, b"two") == b"two"
        assert server.connections == 2
        assert server.peers[0][1] == server.peers[1][1] == conn.local_port
        await conn.close()


async def test_a_source_port_that_is_taken_falls_back_to_any_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        async with FakeRpcServer() as server:
            conn = conn_to(server, reuse_port=True)
            conn.local_port = busy
            assert await call_bytes(conn, b"x") == b"x"
            assert server.peers[0][1] != busy
            await conn.close()
