"""The NFS backend against a real nfs-ganesha: activation rules, errors users meet, sizing."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest
from swapio_nfs._backend import MAX_REQUEST_BYTES, NfsSwapFile
from swapio_nfs._client import NfsClient
from swapio_nfs._errors import (
    MountAccesError,
    MountNoEntError,
    NfsAccesError,
    RpcConnectionError,
)
from swapio_nfs._receive import RX_BUFFER_BYTES
from swapio_nfs.ganesha import GaneshaError, GaneshaServer

from swapio.area import CreateRequest
from swapio.errors import AreaExistsError, AreaFormatError, AreaNotFoundError, UsageError
from swapio.plugins import PluginHost

PAGE = 4096


@pytest.fixture
def host() -> PluginHost:
    return PluginHost()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_create_preallocates_the_whole_file(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(100, PAGE))
    try:
        st = os.stat(ganesha.export / nfs_name)
        assert st.st_size == 100 * PAGE
        assert st.st_blocks * 512 >= st.st_size  # no holes
        assert area.capabilities.durable
        assert area.capabilities.reserve_need > 0
    finally:
        await area.deactivate()


async def test_requests_are_sized_from_fsinfo(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(8, PAGE))
    try:
        swap: NfsSwapFile = area.private
        info = await swap.client.fsinfo()
        assert swap.max_io == min(info.rtmax, info.wtmax, 1 << 20)  # bytes per READ/WRITE
        assert area.capabilities.max_pages_per_request == MAX_REQUEST_BYTES // PAGE
    finally:
        await area.deactivate()


async def test_merged_request_is_one_write_and_one_read_call(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(64, PAGE))
    try:
        swap: NfsSwapFile = area.private
        before = swap.client.conn.calls
        data = os.urandom(32 * PAGE)
        await area.write(4, data)
        assert swap.client.conn.calls - before == 2  # WRITE + COMMIT
        before = swap.client.conn.calls
        assert bytes(await area.read(4, 32)) == data
        assert swap.client.conn.calls - before == 1
    finally:
        await area.deactivate()


async def test_a_request_larger_than_a_transfer_is_several_calls_and_one_commit(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(1024, PAGE))
    try:
        swap: NfsSwapFile = area.private
        pieces = 4 * swap.max_io // PAGE
        data = os.urandom(pieces * PAGE - PAGE)  # three whole transfers and a shorter one
        before, commits = swap.client.conn.calls, swap.commits
        await area.write(0, data)
        assert swap.client.conn.calls - before == 5  # 4 WRITEs + 1 COMMIT
        assert swap.commits - commits == 1
        before = swap.client.conn.calls
        assert bytes(await area.read(0, pieces - 1)) == data
        assert swap.client.conn.calls - before == 4
    finally:
        await area.deactivate()


async def test_read_data_is_received_straight_into_the_callers_pages(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(64, PAGE))
    try:
        swap: NfsSwapFile = area.private
        data = os.urandom(64 * PAGE)
        await area.write(0, data)
        stats = swap.client.conn.receive
        placed, copied = stats.placed_bytes, stats.copied_bytes
        out = bytearray(64 * PAGE)
        await area.swap_in(0, [memoryview(out)[i * PAGE : (i + 1) * PAGE] for i in range(64)])
        assert bytes(out) == data
        # at most one receive buffer's worth arrives with the header and is copied once
        assert stats.copied_bytes - copied <= RX_BUFFER_BYTES
        assert stats.placed_bytes - placed >= len(data) - RX_BUFFER_BYTES
    finally:
        await area.deactivate()


async def test_open_refuses_a_file_with_holes(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    with open(ganesha.export / nfs_name, "wb") as f:
        f.truncate(16 * PAGE)  # sparse
    with pytest.raises(AreaFormatError, match="has holes"):
        await host.activate(ganesha.url(nfs_name))


async def test_open_refuses_a_size_that_is_not_whole_pages(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    (ganesha.export / nfs_name).write_bytes(b"x" * (PAGE + 1))
    with pytest.raises(AreaFormatError, match="not a positive whole number of 4096-byte pages"):
        await host.activate(ganesha.url(nfs_name))


async def test_open_refuses_a_directory(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    (ganesha.export / nfs_name).mkdir()
    with pytest.raises(AreaFormatError, match="is a directory"):
        await host.activate(ganesha.url(nfs_name))
    with pytest.raises(AreaExistsError):
        await host.activate(ganesha.url(nfs_name), create=CreateRequest(4, PAGE))


async def test_open_of_a_missing_file_is_not_found(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    with pytest.raises(AreaNotFoundError, match=f"{nfs_name} does not exist"):
        await host.activate(ganesha.url(nfs_name))


async def test_unknown_export_is_a_mount_error_naming_it(
    host: PluginHost, ganesha: GaneshaServer
) -> None:
    url = ganesha.url("f", export=ganesha.root / "not-exported")
    # ganesha answers MNT3ERR_ACCES for a path it does not export (others say NOENT)
    with pytest.raises((MountAccesError, MountNoEntError), match="'.*/not-exported'"):
        await host.activate(url, create=CreateRequest(4, PAGE))


async def test_permission_denied_for_another_uid(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    path = ganesha.export / nfs_name
    path.write_bytes(bytes(4 * PAGE))
    path.chmod(0o600)  # owned by root
    with pytest.raises(NfsAccesError, match="uid 4242 may not read and modify"):
        await host.activate(ganesha.url(nfs_name, uid=4242, gid=4242))


async def test_read_only_export_refuses_activation(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    (ganesha.ro_export / nfs_name).write_bytes(bytes(4 * PAGE))
    with pytest.raises(NfsAccesError):
        await host.activate(ganesha.url(nfs_name, export=ganesha.ro_export))


async def test_unreachable_server_is_a_connection_error(host: PluginHost) -> None:
    port = closed_port()
    url = f"nfs://127.0.0.1/srv/x/f?nfsport={port}&mountport={port}"
    with pytest.raises(RpcConnectionError, match="Connection refused"):
        await host.activate(url, create=CreateRequest(4, PAGE))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nfs:///export/f", "needs a server"),
        ("nfs://127.0.0.1/f", "names no export"),
        ("nfs://127.0.0.1/export/dir/", "naming a file"),
        ("nfs://127.0.0.1/export/f?version=4", "only NFS version 3"),
        ("nfs://127.0.0.1/export/f?nfsprt=1", "unknown parameter"),
        ("nfs://127.0.0.1/export/f?nfsport=x", "must be an integer"),
        ("nfs://127.0.0.1/export/f?nfsport=70000", "1..65535"),
        ("nfs://127.0.0.1/export/../f", "not allowed"),
        ("nfs://127.0.0.1/export/f?page_size=1000", "power of two"),
        ("nfs://127.0.0.1/export/f?nconnect=0", "nconnect must be in 1..16"),
    ],
)
async def test_bad_urls_are_usage_errors(host: PluginHost, url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        await host.activate(url, create=CreateRequest(4, PAGE))


async def test_client_procedures_against_the_server(ganesha: GaneshaServer, nfs_name: str) -> None:
    client = await NfsClient.mount(
        ganesha.host, str(ganesha.export), nfsport=ganesha.nfsport, mountport=ganesha.mountport
    )
    try:
        await client.null()
        made = await client.create(client.root_fh, nfs_name)
        assert made.fh is not None
        res = await client.write(made.fh, 0, b"hello")
        assert res.count == 5
        assert (await client.commit(made.fh)).verifier == res.verifier
        assert await client.read(made.fh, 0, 100) == b"hello"
        assert (await client.getattr(made.fh)).size == 5
        stat = await client.fsstat()
        assert stat.tbytes >= stat.fbytes >= stat.abytes
        await client.remove(client.root_fh, nfs_name)
        assert not (ganesha.export / nfs_name).exists()
    finally:
        await client.unmount()


def test_missing_server_binary_is_a_loud_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    server = GaneshaServer(tmp_path)
    with pytest.raises(GaneshaError, match=r"ganesha.nfsd is not installed.*nfs-ganesha"):
        server.start()


def test_server_that_cannot_start_is_a_loud_error_with_its_log(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    server = GaneshaServer(tmp_path)
    with socket.socket() as taken:  # the NFS port is taken: ganesha cannot bind it
        taken.bind(("127.0.0.1", server.nfsport))
        taken.listen()
        try:
            with pytest.raises(GaneshaError, match=r"(?s)exited with.*Address already in use"):
                server.start()
        finally:
            server.kill()


async def test_create_with_another_page_size_keeps_whole_pages(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name), create=CreateRequest(16, 65536))
    try:
        assert area.page_size == 65536
        assert area.private.max_io == 1 << 20  # transfers of whole 64 KiB pages
        assert area.capabilities.max_pages_per_request == MAX_REQUEST_BYTES // 65536
        data = os.urandom(3 * 65536)
        await area.write(5, data)
        assert bytes(await area.read(5, 3)) == data
    finally:
        await area.deactivate()
    again = await host.activate(ganesha.url(nfs_name, page_size=65536))
    try:
        assert again.pages == 16
    finally:
        await again.deactivate()
    with pytest.raises(UsageError, match="differs from the URL's page_size=4096"):
        await host.activate(
            ganesha.url(nfs_name + "x", page_size=4096), create=CreateRequest(4, 8192)
        )


async def test_nconnect_spreads_calls_over_several_connections(
    host: PluginHost, ganesha: GaneshaServer, nfs_name: str
) -> None:
    area = await host.activate(ganesha.url(nfs_name, nconnect=3), create=CreateRequest(64, PAGE))
    try:
        swap: NfsSwapFile = area.private
        assert len(swap.client.conns) == 3
        data = [os.urandom(PAGE) for _ in range(64)]
        await asyncio.gather(*(area.write(s, data[s]) for s in range(64)))
        got = await asyncio.gather(*(area.read(s) for s in range(64)))
        assert [bytes(g) for g in got] == data
        assert all(conn.calls > 10 for conn in swap.client.conns)
    finally:
        await area.deactivate()
    assert all(not conn.connected for conn in swap.client.conns)
