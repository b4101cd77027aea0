"""Creating an NFS area too big for the server: refused up front, nothing left on the export.

The size is checked against FSINFO ``maxfilesize`` and FSSTAT ``abytes`` (RFC 1813 §3.3.19,
§3.3.18) before CREATE; preallocation keeps a bounded number of WRITEs in flight and removes
the file it created if it fails midway.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence

import pytest
from swapio_nfs import _backend
from swapio_nfs._client import NfsClient
from swapio_nfs._errors import NfsError, Nfsstat3, nfs_error
from swapio_nfs._nfs3 import StableHow, WriteResult
from swapio_nfs._xdr import Buffer

from swapio.area import CreateRequest
from swapio.errors import AreaError
from swapio.plugins import PluginHost

from .conftest import GaneshaServer

PAGE = 4096


@pytest.fixture
async def client(ganesha: GaneshaServer) -> AsyncIterator[NfsClient]:
    c = await NfsClient.mount(
        ganesha.host, str(ganesha.export), nfsport=ganesha.nfsport, mountport=ganesha.mountport
    )
    try:
        yield c
    finally:
        await c.unmount()


async def test_request_bigger_than_free_space_is_refused_before_create(
    ganesha: GaneshaServer, client: NfsClient, nfs_name: str
) -> None:
    stat = await client.fsstat()
    info = await client.fsinfo()
    # twice the free space: other processes freeing space meanwhile cannot make it fit
    pages = 2 * (stat.abytes // PAGE) + 1
    assert pages * PAGE <= info.maxfilesize  # so the free-space check is the one that answers
    with pytest.raises(AreaError, match="free") as caught:
        await PluginHost().activate(ganesha.url(nfs_name), create=CreateRequest(pages, PAGE))
    assert str(pages * PAGE) in str(caught.value)
    assert not (ganesha.export / nfs_name).exists()


async def test_request_bigger_than_maxfilesize_is_refused_before_create(
    ganesha: GaneshaServer, client: NfsClient, nfs_name: str
) -> None:
    info = await client.fsinfo()
    pages = info.maxfilesize // PAGE + 1
    with pytest.raises(AreaError, match="largest file") as caught:
        await PluginHost().activate(ganesha.url(nfs_name), create=CreateRequest(pages, PAGE))
    assert str(info.maxfilesize) in str(caught.value)
    assert not (ganesha.export / nfs_name).exists()


async def test_failure_midway_through_preallocation_removes_the_file(
    ganesha: GaneshaServer, nfs_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fault injection in addition to the real server: the 5th WRITE answers NFS3ERR_NOSPC
    real_write = NfsClient.write
    calls = 0

    async def failing_write(
        self: NfsClient,
        fh: bytes,
        offset: int,
        data: Buffer | Sequence[Buffer],
        stable: StableHow,
    ) -> WriteResult:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise nfs_error("WRITE", Nfsstat3.NFS3ERR_NOSPC)
        return await real_write(self, fh, offset, data, stable)

    monkeypatch.setattr(NfsClient, "write", failing_write)
    monkeypatch.setattr(_backend, "MAX_IO_BYTES", 8 * PAGE)  # many WRITEs for a small file
    with pytest.raises(NfsError, match="NFS3ERR_NOSPC"):
        await PluginHost().activate(ganesha.url(nfs_name), create=CreateRequest(256, PAGE))
    assert calls >= 5
    assert not (ganesha.export / nfs_name).exists()


async def test_preallocation_keeps_a_bounded_number_of_writes_in_flight(
    ganesha: GaneshaServer, nfs_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = NfsClient.write
    in_flight = 0
    most = 0
    calls = 0

    async def counting_write(
        self: NfsClient,
        fh: bytes,
        offset: int,
        data: Buffer | Sequence[Buffer],
        stable: StableHow,
    ) -> WriteResult:
        nonlocal in_flight, most, calls
        calls += 1
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0)  # let every ready worker start its WRITE
            return await real_write(self, fh, offset, data, stable)
        finally:
            in_flight -= 1

    monkeypatch.setattr(NfsClient, "write", counting_write)
    monkeypatch.setattr(_backend, "MAX_IO_BYTES", 4 * PAGE)
    area = await PluginHost().activate(ganesha.url(nfs_name), create=CreateRequest(256, PAGE))
    try:
        assert calls >= 256 // 4
        assert 1 < most <= _backend.PREALLOC_CONCURRENCY
        assert (ganesha.export / nfs_name).stat().st_size == 256 * PAGE
    finally:
        await area.deactivate()


def swapio_create(url: str, pages: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swapio", "create", url, "--pages", str(pages)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("pages", [99999999999999999999, 100000000000])
async def test_cli_create_too_big_is_one_line_and_leaves_nothing(
    ganesha: GaneshaServer, nfs_name: str, pages: int
) -> None:
    url = ganesha.url(nfs_name)
    proc = await asyncio.to_thread(swapio_create, url, pages)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("swapio: error: ")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (ganesha.export / nfs_name).exists()
