"""The file backend: conformance, swapon-style checks, block devices, durability."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaFormatError,
    AreaNotFoundError,
    LocationError,
    PageSizeError,
    ReadOnlyAreaError,
    UsageError,
)
from swapio.testing import BackendTests, page_pattern


class TestFileConformance(BackendTests):
    @pytest.fixture
    def area_url(self, tmp_path: Path, page_size: int) -> str:
        # a headerless file does not record its page size: the URL does (area_page_size)
        return f"file://{tmp_path}/swap.img?page_size={page_size}"

    async def inject_fault(self, area: SwapArea) -> None:
        store = area.private.store
        self._saved_fd = store.fd
        store.fd = os.open(os.path.dirname(store.path), os.O_RDONLY)  # EISDIR / EBADF on I/O

    async def clear_fault(self, area: SwapArea) -> None:
        store = area.private.store
        os.close(store.fd)
        store.fd = self._saved_fd


class TestDurableFileConformance(TestFileConformance):
    @pytest.fixture
    def area_url(self, tmp_path: Path, page_size: int) -> str:
        return f"file://{tmp_path}/swap.img?durable=1&page_size={page_size}"


@pytest.fixture
def host() -> PluginHost:
    return PluginHost()


async def test_created_file_is_fully_allocated(host: PluginHost, tmp_path: Path) -> None:
    area = await host.activate(f"file://{tmp_path}/s", create=CreateRequest(pages=32))
    await area.deactivate()
    st = os.stat(tmp_path / "s")
    assert st.st_size == 32 * 4096
    assert st.st_blocks * 512 >= st.st_size


async def test_file_with_holes_is_refused(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.truncate(64 * 4096)
    with pytest.raises(AreaFormatError, match="holes"):
        await host.activate(f"file://{path}")
    assert path.stat().st_size == 64 * 4096


async def test_file_of_wrong_size_is_refused(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "odd"
    path.write_bytes(b"x" * 5000)
    with pytest.raises(AreaFormatError, match="multiple of the page size 4096"):
        await host.activate(f"file://{path}")
    assert path.read_bytes() == b"x" * 5000


async def test_page_size_comes_from_the_url(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"\1" * 8192)
    area = await host.activate(f"file://{path}?page_size=512")
    assert (area.pages, area.page_size) == (16, 512)
    await area.deactivate()
    with pytest.raises(PageSizeError):
        await host.activate(f"file://{path}?page_size=1000")


async def test_create_with_a_different_url_page_size_is_refused_and_creates_nothing(
    host: PluginHost, tmp_path: Path
) -> None:
    path = tmp_path / "c"
    with pytest.raises(UsageError, match="page_size=8192"):
        await host.activate(f"file://{path}?page_size=8192", create=CreateRequest(4, 4096))
    assert not path.exists()


async def test_missing_file_directory_and_unknown_parameter(
    host: PluginHost, tmp_path: Path
) -> None:
    with pytest.raises(AreaNotFoundError, match="no such file"):
        await host.activate(f"file://{tmp_path}/nope")
    with pytest.raises(AreaFormatError, match="directory"):
        await host.activate(f"file://{tmp_path}")
    with pytest.raises(LocationError, match="pagesize"):
        await host.activate(f"file://{tmp_path}/x?pagesize=4096")
    with pytest.raises(LocationError, match="host"):
        await host.activate("file://relative/path")


async def test_create_refuses_existing_file_and_keeps_it(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "keep"
    path.write_bytes(b"precious" * 512)
    with pytest.raises(AreaExistsError):
        await host.activate(f"file://{path}", create=CreateRequest(pages=8))
    assert path.read_bytes() == b"precious" * 512


async def test_immutable_file_activates_read_only(host: PluginHost, tmp_path: Path) -> None:
    # chattr +i makes a file immutable for root too (ext4/xfs/btrfs).
    path = tmp_path / "immutable"
    path.write_bytes(page_pattern(0, 0, 4096) * 2)
    subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    try:
        area = await host.activate(f"file://{path}")
        assert area.capabilities.read_only
        assert bytes(await area.read(1)) == page_pattern(0, 0, 4096)
        with pytest.raises(ReadOnlyAreaError, match="read-only"):
            await area.write(1, bytes(4096))
        with pytest.raises(ReadOnlyAreaError):
            await area.discard(0)
        await area.deactivate()
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert path.read_bytes() == page_pattern(0, 0, 4096) * 2


async def test_create_larger_than_free_space_leaves_nothing(
    host: PluginHost, tmp_path: Path
) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(AreaError, match="bytes are free"):
        await host.activate(
            f"file://{tmp_path}/big", create=CreateRequest(pages=free // 4096 + 1024)
        )
    with pytest.raises(AreaError, match="bytes are free"):
        await host.activate(f"file://{tmp_path}/huge", create=CreateRequest(pages=10**20))
    assert not (tmp_path / "big").exists()
    assert not (tmp_path / "huge").exists()


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """A real block device: a loop device over a 1 MiB image (root and losetup required)."""
    image = tmp_path / "loop.img"
    image.write_bytes(bytes(1 << 20))
    out = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    )
    device = out.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


async def test_block_device_area(host: PluginHost, loop_device: str) -> None:
    area = await host.activate(f"file://{loop_device}")
    assert area.pages == (1 << 20) // 4096
    assert area.private.store.block_device
    page = page_pattern(7, 0, 4096)
    await area.write(7, page)
    assert bytes(await area.read(7)) == page
    await area.deactivate()
    with open(loop_device, "rb") as dev:
        dev.seek(7 * 4096)
        assert dev.read(4096) == page


def _count_hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls handed to any owner thread from now on (one list item each)."""
    from swapio.owner import OwnerThread

    hops: list[int] = []
    real = OwnerThread.submit

    def counting(self: OwnerThread, fn: object, *args: object) -> object:
        hops.append(1)
        return real(self, fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(OwnerThread, "submit", counting)
    return hops


async def test_at_most_one_thread_hop_per_request(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = await host.activate(f"file://{tmp_path}/s?durable=1", create=CreateRequest(pages=512))
    hops = _count_hops(monkeypatch)
    await area.write(0, bytes(256 * 4096))  # durable: never on the loop
    await area.read(256, 256)  # more than the inline limit
    assert len(hops) == 2
    monkeypatch.undo()
    await area.deactivate()


async def test_owner_thread_ends_on_deactivate(host: PluginHost, tmp_path: Path) -> None:
    import threading

    area = await host.activate(f"file://{tmp_path}/s", create=CreateRequest(pages=8))
    name = f"swapio-file:{tmp_path}/s"
    assert any(t.name == name for t in threading.enumerate())
    await area.deactivate()
    assert not any(t.name == name for t in threading.enumerate())
