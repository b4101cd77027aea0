"""Interop with libnfs (nfs-cp / nfs-cat, an independent C client) in both directions."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from swapio.area import CreateRequest
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import GaneshaServer

PAGE = 4096


def libnfs_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install Debian package libnfs-utils", pytrace=False)
    return path


async def run(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}): {err.decode()}"
    return out


async def test_pages_swapped_out_by_swapio_read_back_by_nfs_cat(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    # swapio's own parameters are ignored by libnfs: the very same URL works for both
    url = ganesha.url(nfs_name, page_size=PAGE, timeo=5)
    pages = 96
    area = await PluginHost().activate(url, create=CreateRequest(pages, PAGE))
    expected = bytearray(pages * PAGE)
    try:
        for slot in (0, 1, 2, 50, 95):
            await area.write(slot, page_pattern(slot, 1, PAGE))
            expected[slot * PAGE : (slot + 1) * PAGE] = page_pattern(slot, 1, PAGE)
        run_data = b"".join(page_pattern(s, 2, PAGE) for s in range(10, 74))
        await area.write(10, run_data)  # one merged request
        expected[10 * PAGE : 74 * PAGE] = run_data
    finally:
        await area.deactivate()
    # the URL is the very one swapio used: libnfs conventions
    assert await run(libnfs_tool("nfs-cat"), url) == bytes(expected)


async def test_file_written_by_nfs_cp_is_swapped_in_by_swapio(
    ganesha: GaneshaServer, nfs_name: str, tmp_path: Path
) -> None:
    pages = 64
    data = os.urandom(pages * PAGE)
    local = tmp_path / "source"
    local.write_bytes(data)
    url = ganesha.url(nfs_name)
    await run(libnfs_tool("nfs-cp"), str(local), url)
    area = await PluginHost().activate(url)
    try:
        assert area.pages == pages
        assert bytes(await area.read(0, pages)) == data
        assert bytes(await area.read(37)) == data[37 * PAGE : 38 * PAGE]
    finally:
        await area.deactivate()
