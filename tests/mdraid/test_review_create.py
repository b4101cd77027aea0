"""Review fixes: create leaves nothing behind, bounded bitmap creation, clear config errors,
exit code 3 for a non-durable bitmap, and bitmap pages flushed in runs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from swapio_mdraid._format import MAX_CHUNKS, Bitmap
from swapio_mdraid._mirror import Mirror
from swapio_mdraid._store import BitmapStore, NotDurableError
from swapio_mdraid.errors import BitmapParameterError

from swapio.area import CreateRequest, PageBuffer, SwapArea
from swapio.errors import AreaError, AreaExistsError, BackendIOError, UsageError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import PAGE, mirror_of, mirror_url, page, run_cli

# --- 2. a failed mirror create leaves no file behind ---------------------------------


def _mirror(tmp: Path, bitmap: Path | str) -> str:
    return mirror_url(str(bitmap), [str(tmp / "nleg0.img"), str(tmp / "nleg1.img")], name="n")


def test_create_with_an_existing_leg_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "nleg1.img").write_bytes(b"keep")
    url = _mirror(tmp_path, tmp_path / "nbm")
    result = run_cli("create", url, "--pages", "16")
    assert result.returncode == 3, result
    assert "already exists" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nleg1.img"]
    assert (tmp_path / "nleg1.img").read_bytes() == b"keep"
    # the fix is real: with the leg gone, the same command now succeeds
    (tmp_path / "nleg1.img").unlink()
    assert run_cli("create", url, "--pages", "16").returncode == 0


def test_create_with_the_bitmap_directory_missing_creates_nothing(tmp_path: Path) -> None:
    result = run_cli("create", _mirror(tmp_path, tmp_path / "none" / "nbm"), "--pages", "16")
    assert result.returncode == 3, result
    assert "does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


async def test_existing_bitmap_is_refused_before_legs_are_created(
    host: PluginHost, tmp_path: Path
) -> None:
    (tmp_path / "nbm").write_bytes(b"x")
    with pytest.raises(AreaExistsError, match="bitmap .* already exists"):
        await host.activate(_mirror(tmp_path, tmp_path / "nbm"), create=CreateRequest(16, PAGE))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbm"]


async def test_legs_created_before_a_late_failure_are_removed(
    host: PluginHost, tmp_path: Path
) -> None:
    """A non-durable bitmap on another backend is only found out after the legs exist."""
    url = _mirror(tmp_path, "memory://review-nd-bitmap")
    with pytest.raises(NotDurableError):
        await host.activate(url, create=CreateRequest(16, PAGE))
    assert list(tmp_path.iterdir()) == []
    from swapio_memory.plugin import forget

    forget("review-nd-bitmap")


async def test_legs_and_bitmap_are_removed_when_assembly_fails_last(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fail(self: Mirror) -> None:
        raise BackendIOError("injected: first bitmap flush failed")

    monkeypatch.setattr(Mirror, "start", fail)
    with pytest.raises(BackendIOError, match="injected"):
        await host.activate(_mirror(tmp_path, tmp_path / "nbm"), create=CreateRequest(16, PAGE))
    assert list(tmp_path.iterdir()) == []


async def test_opening_an_existing_mirror_never_removes_it(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _mirror(tmp_path, tmp_path / "nbm")
    area = await host.activate(url, create=CreateRequest(16, PAGE))
    await area.deactivate()

    async def fail(self: Mirror) -> None:
        raise BackendIOError("injected")

    monkeypatch.setattr(Mirror, "start", fail)
    with pytest.raises(BackendIOError):
        await host.activate(url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbm", "nleg0.img", "nleg1.img"]


def test_standalone_bitmap_create_in_a_missing_directory(tmp_path: Path) -> None:
    result = run_cli(
        "bitmap", "create", str(tmp_path / "no" / "bm"), "--sync-size", "1M", "--chunk-size", "4K"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- 3. bitmap creation is bounded ---------------------------------------------------


@pytest.mark.parametrize(
    ("sync", "chunk", "advice"),
    [
        ("1T", "512", "at least 524288 bytes"),
        ("64G", "512", "at least 32768 bytes"),
        ("1000000T", "512", "sync size is too large"),
    ],
)
def test_too_many_chunks_is_a_usage_error(
    tmp_path: Path, sync: str, chunk: str, advice: str
) -> None:
    bm = tmp_path / "bm"
    result = run_cli("bitmap", "create", str(bm), "--sync-size", sync, "--chunk-size", chunk)
    assert result.returncode == 2, result
    assert f"at most {MAX_CHUNKS}" in result.stderr
    assert advice in result.stderr
    assert "Traceback" not in result.stderr
    assert not bm.exists()


def test_the_largest_bitmap_is_accepted_and_fully_dirty(tmp_path: Path) -> None:
    bm = tmp_path / "bm"
    size = MAX_CHUNKS * 512
    result = run_cli("bitmap", "create", str(bm), "--sync-size", str(size), "--chunk-size", "512")
    assert result.returncode == 0, result
    found = Bitmap.decode(bm.read_bytes())
    assert found.chunks == MAX_CHUNKS
    assert found.count_dirty() == MAX_CHUNKS
    with pytest.raises(BitmapParameterError, match=f"at most {MAX_CHUNKS}"):
        Bitmap.create(sync_size_bytes=size + 512, chunk_size=512)


@pytest.mark.parametrize("chunks", [1, 7, 8, 9, 15, 16, 17, 4096 * 8 + 3])
def test_all_dirty_sets_exactly_the_chunks_bits(chunks: int) -> None:
    bitmap = Bitmap.create(sync_size_bytes=chunks * 512, chunk_size=512)
    assert list(bitmap.dirty_chunks()) == list(range(chunks))
    assert bitmap.count_dirty() == chunks
    rest = chunks % 8
    assert bitmap.bits[-1] == (0xFF if not rest else (1 << rest) - 1)  # no bit past the end


# --- 4. a binary file as mirror config -------------------------------------------------


@pytest.mark.parametrize("verb", [("create", "--pages", "16"), ("info",)])
def test_binary_config_file_is_a_clear_error(tmp_path: Path, verb: tuple[str, ...]) -> None:
    conf = tmp_path / "r4k.jpg"
    conf.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(4092))
    result = run_cli(verb[0], f"mirror://{conf}", *verb[1:])
    assert result.returncode == 2, result
    assert "not a TOML file" in result.stderr
    assert "Traceback" not in result.stderr
    assert conf.stat().st_size == 4096


def test_binary_config_file_in_a_subprocess(tmp_path: Path) -> None:
    """The command a user runs: one line on stderr, no traceback."""
    conf = tmp_path / "r4k.jpg"
    conf.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    done = subprocess.run(
        ["swapio", "info", f"mirror://{conf}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "not a TOML file" in done.stderr


# --- 5. a non-durable bitmap exits 3, as the doc's table says ------------------------


def test_non_durable_bitmap_exits_3(tmp_path: Path) -> None:
    url = f"file://{quote(str(tmp_path / 'bm'))}"
    result = run_cli("bitmap", "create", url, "--sync-size", "1M", "--chunk-size", "4K")
    assert result.returncode == 3, result
    assert "not durable" in result.stderr
    assert not (tmp_path / "bm").exists()


def test_non_durable_mirror_bitmap_exits_3(tmp_path: Path) -> None:
    bitmap = f"file://{quote(str(tmp_path / 'bm'))}"
    result = run_cli("create", _mirror(tmp_path, bitmap), "--pages", "16")
    assert result.returncode == 3, result
    assert list(tmp_path.iterdir()) == []


def test_doc_table_lists_non_durable_under_3() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "bitmap-and-mirror.md"
    rows = [line for line in doc.read_text().splitlines() if line.startswith("| 3 |")]
    assert rows
    assert "non-durable" in rows[0]


def test_not_durable_is_an_area_refusal() -> None:
    assert issubclass(NotDurableError, AreaError)  # swapio.cli.exitcodes.AREA = 3
    assert not issubclass(NotDurableError, UsageError)


# --- 6. adjacent bitmap pages go out in one request ----------------------------------


class Counting:
    def __init__(self, area: SwapArea) -> None:
        self.calls: list[tuple[int, int]] = []
        real = area._ops.swap_out

        async def counted(a: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
            self.calls.append((slot, len(pages)))
            await real(a, slot, pages)

        area._ops = dataclasses.replace(area._ops, swap_out=counted)


async def test_adjacent_bitmap_pages_are_one_request(host: PluginHost, tmp_path: Path) -> None:
    bitmap_url = f"file://{quote(str(tmp_path / 'bm'))}?durable=1&page_size=512"
    bitmap = Bitmap.create(sync_size_bytes=4096 * 512 * 8, chunk_size=512)  # 9 pages
    store = await BitmapStore.create(host, bitmap_url, bitmap)
    counting = Counting(store.area)
    await store.write_pages([0, 1, 2, 3, 6, 7, 8])
    await store.close()
    assert counting.calls == [(0, 4), (6, 3)]
    assert store.writes == 9 + 7
    assert store.requests == 1 + 2


async def test_a_write_across_bitmap_pages_flushes_them_in_one_request(
    host: PluginHost, tmp_path: Path
) -> None:
    bitmap_url = f"file://{quote(str(tmp_path / 'bm'))}?durable=1&page_size=512"
    url = mirror_url(bitmap_url, [str(tmp_path / "a"), str(tmp_path / "b")], chunk=512)
    area = await host.activate(url, create=CreateRequest(1024, PAGE))  # 8192 chunks
    mirror = mirror_of(area)
    counting = Counting(mirror.store.area)
    # pages 255..256 are chunks 2040..2055: bits in image bytes 511..513, bitmap pages 0 and 1
    await area.write(255, page(5) * 2)
    assert counting.calls == [(0, 2)]
    await area.deactivate()
    assert Bitmap.decode((tmp_path / "bm").read_bytes()).count_dirty() == 0
