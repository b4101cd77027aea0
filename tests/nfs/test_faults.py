"""Faults against the real server: restart mid-stream, connection reset, a silent server,
a replaced file (ESTALE); plus the write-verifier rule checked with a stub client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from swapio_nfs._backend import NfsSwapFile
from swapio_nfs._errors import NfsStaleError, RpcConnectionError, RpcTimeoutError
from swapio_nfs._nfs3 import NFS_PROG, Fattr3, Ftype3, LookupResult, NfsProc, NfsTime3, StableHow
from swapio_nfs._rpc import decode_call
from swapio_nfs._url import parse_nfs_url

from swapio.area import CreateRequest, SwapArea
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import GaneshaServer
from .fakenfs import Write, decode_write
from .rpcproxy import RecordingProxy, Seen

PAGE = 4096


async def stream_of_swap_outs(
    area: SwapArea, slots: range, generation: int, depth: int
) -> list[BaseException | None]:
    sem = asyncio.Semaphore(depth)

    async def one(slot: int) -> None:
        async with sem:
            await area.write(slot, page_pattern(slot, generation, PAGE))

    return await asyncio.gather(*(one(s) for s in slots), return_exceptions=True)


def on_disk(ganesha: GaneshaServer, name: str, slot: int) -> bytes:
    with open(ganesha.export / name, "rb") as f:
        f.seek(slot * PAGE)
        return f.read(PAGE)


async def test_server_restart_mid_stream_loses_no_completed_swap_out(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pages = 2000
    url = ganesha.url(nfs_name, timeo=0.5, retrans=12)
    area = await PluginHost().activate(url, create=CreateRequest(pages, PAGE))
    swap: NfsSwapFile = area.private
    await asyncio.sleep(ganesha.seconds_until_new_verifier())
    try:
        stream = asyncio.ensure_future(stream_of_swap_outs(area, range(pages), 1, 8))
        while swap.commits < 20:  # noqa: ASYNC110 - wait until the stream is well under way
            await asyncio.sleep(0.005)
        await asyncio.to_thread(ganesha.kill)  # SIGKILL: a crash
        assert not stream.done()
        await asyncio.sleep(0.5)  # down for a while: calls retransmit, new ones queue
        await asyncio.to_thread(ganesha.start)  # same ports, same export, new boot verifier
        results = await asyncio.wait_for(stream, 120)
        # within their retransmission budget, in-flight and new swap-outs all complete
        assert [r for r in results if r is not None] == []
        completed = list(range(pages))
        assert swap.verifier_changes >= 1  # the restart was seen through the write verifier
        assert swap.client.conn.reconnects >= 1
        for slot in completed:
            assert bytes(await area.read(slot)) == page_pattern(slot, 1, PAGE), slot
            assert on_disk(ganesha, nfs_name, slot) == page_pattern(slot, 1, PAGE), slot
    finally:
        await area.deactivate()


async def test_server_down_beyond_the_retry_budget_fails_swap_outs_clearly(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await PluginHost().activate(
        ganesha.url(nfs_name, timeo=0.1, retrans=2), create=CreateRequest(64, PAGE)
    )
    try:
        await area.write(0, page_pattern(0, 0, PAGE))
        await asyncio.to_thread(ganesha.kill)
        results = await stream_of_swap_outs(area, range(1, 9), 1, 8)
        assert all(isinstance(r, RpcConnectionError) for r in results), results
        assert "connection lost and not re-established" in str(results[0])
        await asyncio.to_thread(ganesha.start)
        await area.write(1, page_pattern(1, 2, PAGE))  # the area works again
        assert bytes(await area.read(0, 2)) == page_pattern(0, 0, PAGE) + page_pattern(1, 2, PAGE)
    finally:
        await area.deactivate()


async def test_connection_resets_mid_stream_are_survived(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    pages = 2000
    area = await PluginHost().activate(
        ganesha.url(nfs_name, timeo=1, retrans=5), create=CreateRequest(pages, PAGE)
    )
    swap: NfsSwapFile = area.private
    try:
        stream = asyncio.ensure_future(stream_of_swap_outs(area, range(pages), 3, 16))
        for threshold in (10, 40, 80):
            while swap.commits < threshold:  # noqa: ASYNC110 - reset at points in the stream
                await asyncio.sleep(0.001)
            assert not stream.done()
            swap.client.conn.abort()
        assert await asyncio.wait_for(stream, 60) == [None] * pages
        assert swap.client.conn.reconnects >= 1
        data = bytes(await area.read(0, pages))
        assert data == b"".join(page_pattern(s, 3, PAGE) for s in range(pages))
    finally:
        await area.deactivate()


async def test_a_server_that_stops_answering_times_out_then_recovers(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await PluginHost().activate(
        ganesha.url(nfs_name, timeo=0.2, retrans=1), create=CreateRequest(8, PAGE)
    )
    try:
        await area.write(0, page_pattern(0, 0, PAGE))
        ganesha.pause()
        try:
            with pytest.raises(RpcTimeoutError, match="got no reply after 2 transmissions"):
                await area.write(1, page_pattern(1, 0, PAGE))
            with pytest.raises(RpcTimeoutError):
                await area.read(0)
        finally:
            ganesha.resume()
        # the pager's retry after a failed swap-out, with newer data: sent only once the
        # timed-out WRITE has been answered (docs/nfs.md, "In-doubt WRITEs")
        await area.write(1, page_pattern(1, 1, PAGE))
        assert bytes(await area.read(0, 2)) == page_pattern(0, 0, PAGE) + page_pattern(1, 1, PAGE)
    finally:
        await area.deactivate()


async def test_file_replaced_behind_the_area_is_a_clear_stale_error(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await PluginHost().activate(
        ganesha.url(nfs_name, timeo=0.5, retrans=8), create=CreateRequest(8, PAGE)
    )
    swap: NfsSwapFile = area.private
    try:
        path = ganesha.export / nfs_name
        path.unlink()
        path.write_bytes(bytes(8 * PAGE))  # same name, another inode
        await asyncio.to_thread(ganesha.restart)  # forget the cached handle: ESTALE now
        with pytest.raises(NfsStaleError, match="was replaced by another file"):
            await area.write(0, page_pattern(0, 0, PAGE))
        assert swap.relookups == 1
        assert path.read_bytes() == bytes(8 * PAGE)  # the impostor was not written
    finally:
        with pytest.raises(NfsStaleError, match="was replaced"):
            await area.deactivate()  # still releases the mount and connection


def writes_seen(proxy: RecordingProxy) -> list[tuple[Seen, Write]]:
    """The WRITE calls that went through the proxy, in order."""
    out = []
    for seen in proxy.log:
        if seen.kind == "call":
            call = decode_call(seen.record)
            if call.prog == NFS_PROG and call.proc == NfsProc.WRITE:
                out.append((seen, decode_write(call)))
    return out


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the condition is the proxy's log
            await asyncio.sleep(0.005)


async def test_a_write_timed_out_on_a_paused_server_is_resent_by_xid_and_ordered_before_the_next(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    old, new = page_pattern(1, 1, PAGE), page_pattern(1, 2, PAGE)
    async with RecordingProxy(ganesha.host, ganesha.nfsport) as proxy:
        # a caller gives up after 0.5 + 1 + 2 s, which also bounds the newer WRITE's wait
        url = ganesha.url(nfs_name, timeo=0.5, retrans=2, nfsport=proxy.port)
        area = await PluginHost().activate(url, create=CreateRequest(8, PAGE))
        swap: NfsSwapFile = area.private
        try:
            ganesha.pause()
            try:
                with pytest.raises(RpcTimeoutError, match="no reply after 3 transmissions"):
                    await area.write(1, old)
                (old_xid,) = {seen.xid for seen, w in writes_seen(proxy) if w.data == old}
                sent = len(proxy.calls(old_xid))
                # in doubt: sent again, same XID, after its caller has had the error
                await until(lambda: len(proxy.calls(old_xid)) > sent, 15)
                newer = asyncio.ensure_future(area.write(1, new))
                await until(
                    lambda: (
                        swap.doubt_waits == 1 or any(w.data == new for _, w in writes_seen(proxy))
                    )
                )
                # the newer WRITE of the slot is held back while the old one is in doubt
                assert [w for _, w in writes_seen(proxy) if w.data == new] == []
                assert not newer.done()
            finally:
                ganesha.resume()
            await asyncio.wait_for(newer, 30)
            assert bytes(await area.read(1)) == new
            assert on_disk(ganesha, nfs_name, 1) == new
            copies = proxy.calls(old_xid)
            assert len(copies) > sent  # the caller's three, then at least one more
            assert len({c.record for c in copies}) == 1  # byte for byte the first call
            # the newer WRITE left only after nfs-ganesha had answered the old XID
            first_new = next(s for s, w in writes_seen(proxy) if w.data == new)
            assert proxy.index("reply", old_xid) < proxy.log.index(first_new)
            assert swap.client.conn.doubts_settled == 1
            assert swap.client.conn.in_doubt == 0
        finally:
            await area.deactivate()


# ---------------------------------------------------------------- verifier rule (stub client)


@dataclass
class _Write:
    count: int
    committed: StableHow
    verifier: bytes


@dataclass
class _Commit:
    verifier: bytes


@dataclass
class StubClient:
    """Answers WRITE with one verifier and COMMIT with another: a restart in between."""

    write_verifier: bytes = b"boot-one"
    commit_verifier: bytes = b"boot-two"
    writes: list[tuple[int, StableHow]] = field(default_factory=list)

    async def write(
        self, fh: bytes, offset: int, data: Any, stable: StableHow, *, on_doubt: Any = None
    ) -> _Write:
        size = sum(memoryview(d).nbytes for d in data)
        self.writes.append((offset, stable))
        return _Write(size, stable, self.write_verifier)

    async def commit(self, fh: bytes, offset: int = 0, count: int = 0) -> _Commit:
        return _Commit(self.commit_verifier)


def stub_swapfile(client: StubClient) -> NfsSwapFile:
    attrs = Fattr3(
        Ftype3.NF3REG, 0o600, 1, 0, 0, 16 * PAGE, 16 * PAGE, (0, 0), 1, 1,
        NfsTime3(), NfsTime3(), NfsTime3(),
    )  # fmt: skip
    return NfsSwapFile(
        parse_nfs_url("nfs://h/e/f"),
        client,  # type: ignore[arg-type]
        b"fh",
        attrs,
        pages=16,
        max_io=1 << 20,
    )


async def test_verifier_change_between_write_and_commit_resends_the_write_stably() -> None:
    client = StubClient()
    swap = stub_swapfile(client)
    await swap.swap_out(3, [bytes(PAGE), bytes(PAGE)])
    assert client.writes == [(3 * PAGE, StableHow.UNSTABLE), (3 * PAGE, StableHow.FILE_SYNC)]
    assert swap.rewrites == 1


async def test_matching_verifier_needs_no_resend() -> None:
    client = StubClient(commit_verifier=b"boot-one")
    swap = stub_swapfile(client)
    await swap.swap_out(0, [bytes(PAGE)])
    assert client.writes == [(0, StableHow.UNSTABLE)]
    assert swap.rewrites == 0


@dataclass
class StaleOnceClient(StubClient):
    """The first WRITE finds the handle stale; LOOKUP then finds the same file, new handle."""

    root_fh: bytes = b"root"
    stale_left: int = 1
    handles: list[bytes] = field(default_factory=list)
    fileid: int = 1

    async def write(
        self, fh: bytes, offset: int, data: Any, stable: StableHow, *, on_doubt: Any = None
    ) -> _Write:
        self.handles.append(fh)
        if self.stale_left:
            self.stale_left -= 1
            raise NfsStaleError("WRITE")
        return await super().write(fh, offset, data, stable)

    async def lookup(self, dir_fh: bytes, name: str) -> LookupResult:
        attrs = Fattr3(
            Ftype3.NF3REG, 0o600, 1, 0, 0, 16 * PAGE, 16 * PAGE, (0, 0), 1, self.fileid,
            NfsTime3(), NfsTime3(), NfsTime3(),
        )  # fmt: skip
        return LookupResult(b"fresh-fh", attrs, None)


async def test_estale_on_the_same_file_looks_it_up_again_and_retries() -> None:
    client = StaleOnceClient(commit_verifier=b"boot-one")
    swap = stub_swapfile(client)
    await swap.swap_out(0, [bytes(PAGE)])
    assert client.handles == [b"fh", b"fresh-fh"]
    assert swap.fh == b"fresh-fh"
    assert swap.relookups == 1


async def test_estale_on_a_replaced_file_refuses_to_write_the_impostor() -> None:
    client = StaleOnceClient(fileid=2)
    swap = stub_swapfile(client)
    with pytest.raises(NfsStaleError, match="fileid 1 became 2"):
        await swap.swap_out(0, [bytes(PAGE)])
    assert client.handles == [b"fh"]
