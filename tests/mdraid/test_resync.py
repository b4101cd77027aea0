"""`swapio bitmap resync` and the engine behind it, on real image files."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import pytest
from swapio_mdraid import Bitmap, _copier
from swapio_mdraid._locate import activate, path_url
from swapio_mdraid._resync import resync
from swapio_mdraid._store import BitmapStore, NotDurableError
from swapio_memory.plugin import forget

from swapio.area import CreateRequest
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from tests.mdraid.helpers import CliResult, cli, make_image, run_cli

CHUNK = 65536
CHUNKS = 64
SIZE = CHUNK * CHUNKS


def swapio(*args: str, check_rc: int | None = 0) -> CliResult:
    """``swapio ARGS`` in this process (the TTY and kill tests below use real processes)."""
    done = run_cli(*args)
    if check_rc is not None:
        assert done.returncode == check_rc, (done.returncode, done.stdout, done.stderr)
    return done


def scribble(path: Path, chunk: int, fill: int, size: int = CHUNK) -> None:
    with open(path, "r+b") as fh:
        fh.seek(chunk * CHUNK)
        fh.write(bytes([fill]) * size)


def digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-" for p in paths]


@pytest.fixture
def legs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """bitmap with chunks 3, 10, 11 and 63 dirty; the legs differ exactly there."""
    bitmap, a, b = tmp_path / "bm", tmp_path / "a.img", tmp_path / "b.img"
    make_image(a, SIZE, 0x00)
    make_image(b, SIZE, 0x00)
    cli("bitmap", "create", str(bitmap), "--sync-size", str(SIZE), "--chunk-size", "64K", "--clean")
    for chunk, fill in ((3, 1), (10, 2), (11, 3), (63, 4)):
        scribble(a, chunk, fill)
        cli("bitmap", "dirty", str(bitmap), "--offset", str(chunk * CHUNK), "--length", "1")
    return bitmap, a, b


def read_bitmap(path: Path) -> Bitmap:
    return Bitmap.decode(path.read_bytes())


def test_resync_copies_only_dirty_chunks_and_clears_them(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    scribble(a, 20, 0x77)  # differs, but its bit is clear: a plain resync must not touch it
    done = swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b), "--json")
    report = json.loads(done.stdout)
    assert report["copied"] == 4
    assert report["bytes_copied"] == 4 * CHUNK
    assert report["dirty_before"] == 4
    assert report["dirty_after"] == 0
    data_a, data_b = a.read_bytes(), b.read_bytes()
    for chunk in (3, 10, 11, 63):
        assert data_b[chunk * CHUNK : (chunk + 1) * CHUNK] == bytes([data_a[chunk * CHUNK]]) * CHUNK
    assert data_b[20 * CHUNK : 21 * CHUNK] == bytes(CHUNK)
    assert read_bitmap(bitmap).count_dirty() == 0


def test_resync_bumps_events_and_events_cleared(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    before = read_bitmap(bitmap).superblock
    swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b))
    after = read_bitmap(bitmap).superblock
    assert after.events == before.events + 1
    assert after.events_cleared == after.events


def test_dry_run_lists_chunks_writes_nothing_and_exits_8(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    before = digest(bitmap, a, b)
    done = swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b),
                  "--dry-run", check_rc=8)  # fmt: skip
    assert "4 of 64 chunks would be copied, in 3 ranges" in done.stdout
    assert f"chunks 10..11 (2) bytes {10 * CHUNK}..{12 * CHUNK - 1}" in done.stdout
    assert digest(bitmap, a, b) == before


def test_dry_run_of_a_clean_bitmap_exits_0(tmp_path: Path) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    make_image(a, SIZE)
    make_image(b, SIZE)
    swapio("bitmap", "create", str(bitmap), "--sync-size", str(SIZE), "--chunk-size", "64K",
           "--clean")  # fmt: skip
    swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b), "--dry-run")


def test_verify_finds_and_repairs_differences_outside_the_bitmap(
    legs: tuple[Path, Path, Path],
) -> None:
    bitmap, a, b = legs
    scribble(b, 30, 0x99, size=10)
    done = swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b),
                  "--verify", "--json", check_rc=9)  # fmt: skip
    report = json.loads(done.stdout)
    assert report["verified"] == CHUNKS
    assert report["mismatched"] == [3, 10, 11, 30, 63]
    assert report["mismatched_outside_bitmap"] == [30]
    assert a.read_bytes() == b.read_bytes()
    assert read_bitmap(bitmap).count_dirty() == 0


def test_verify_dry_run_reports_without_repairing(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    before = digest(bitmap, a, b)
    done = swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b),
                  "--verify", "--dry-run", check_rc=8)  # fmt: skip
    assert "4 of 64 chunks differ" in done.stdout
    assert digest(bitmap, a, b) == before


def test_several_targets_and_url_legs(legs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bitmap, a, b = legs
    c = tmp_path / "c.img"
    make_image(c, SIZE)
    swapio("bitmap", "resync", path_url(str(bitmap)), "--source", str(a),
           "--target", path_url(str(b)), "--target", str(c))  # fmt: skip
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_block_device_legs(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    devices = []
    try:
        for image in (a, b):
            attached = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                      text=True, check=True)  # fmt: skip
            devices.append(attached.stdout.strip())
        swapio("bitmap", "resync", str(bitmap), "--source", devices[0], "--target", devices[1])
    finally:
        for device in devices:
            subprocess.run(["losetup", "-d", device], check=False)
    assert a.read_bytes() == b.read_bytes()


def test_no_progress_bar_when_stderr_is_not_a_terminal(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    done = subprocess.run(
        ["swapio", "bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout.startswith("resynced 4 dirty chunks")


def test_progress_bar_on_a_terminal(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, b = legs
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            ["swapio", "bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b)],
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=60,
            check=False,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"resync [" in seen
    assert b"4/4" in seen
    assert b"resync [" not in proc.stdout


async def test_interrupted_resync_keeps_progress_and_resumes(tmp_path: Path) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    make_image(a, SIZE, 0x3C)
    make_image(b, SIZE)
    host = PluginHost()
    new = Bitmap.create(sync_size_bytes=SIZE, chunk_size=4096)
    await (await BitmapStore.create(host, str(bitmap), new)).close()
    total = read_bitmap(bitmap).count_dirty()

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    store = await BitmapStore.open(host, str(bitmap))
    areas = [await activate(host, str(a)), await activate(host, str(b))]
    try:
        with pytest.raises(Stop):
            await resync(store, areas[0], areas[1:], progress=stop_after_two)
    finally:
        for area in areas:
            await area.deactivate()
        await store.close()
    left = read_bitmap(bitmap).count_dirty()
    assert 0 < left < total
    done = subprocess.run(  # a new process, as an operator would rerun it
        [
            "swapio",
            "bitmap",
            "resync",
            str(bitmap),
            "--source",
            str(a),
            "--target",
            str(b),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["copied"] == left
    assert a.read_bytes() == b.read_bytes()


def test_kill_9_during_resync_then_resume(tmp_path: Path) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    size = 4 << 20  # 256 chunks of 16 KiB, copied at 2 MiB/s: about 2 s
    make_image(a, size, 0x5A)
    make_image(b, size, 0x00)
    swapio("bitmap", "create", str(bitmap), "--sync-size", str(size), "--chunk-size", "16K")
    total = read_bitmap(bitmap).count_dirty()
    proc = subprocess.Popen(
        [
            "swapio",
            "bitmap",
            "resync",
            str(bitmap),
            "--source",
            str(a),
            "--target",
            str(b),
            "--max-speed",
            "2M",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while read_bitmap(bitmap).count_dirty() == total and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    left = read_bitmap(bitmap).count_dirty()
    assert 0 < left < total, "the kill should land mid-resync with progress on disk"
    assert proc.returncode == -9
    done = swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b), "--json")
    assert json.loads(done.stdout)["copied"] == left
    assert a.read_bytes() == b.read_bytes()


async def test_bits_are_cleared_only_after_the_copies_are_durable(
    legs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bitmap, a, b = legs
    order: list[str] = []
    real_barrier = _copier._Target.barrier
    real_write_pages = BitmapStore.write_pages

    async def barrier(self: _copier._Target) -> None:
        order.append("barrier")
        await real_barrier(self)

    async def write_pages(self: BitmapStore, pages: object) -> None:
        order.append("bitmap")
        await real_write_pages(self, pages)  # type: ignore[arg-type]

    monkeypatch.setattr(_copier._Target, "barrier", barrier)
    monkeypatch.setattr(BitmapStore, "write_pages", write_pages)
    host = PluginHost()
    store = await BitmapStore.open(host, str(bitmap))
    areas = [await activate(host, str(a)), await activate(host, str(b))]
    try:
        target = await _copier._Target.open(areas[1], batched=True)
        assert target.twin is not None  # a file leg gets the bulk twin
        await target.close()
        await resync(store, areas[0], areas[1:])
    finally:
        for area in areas:
            await area.deactivate()
        await store.close()
    assert order[0] == "barrier"
    assert order.index("bitmap") > order.index("barrier")
    assert a.read_bytes() == b.read_bytes()


async def test_non_durable_target_is_refused(legs: tuple[Path, Path, Path]) -> None:
    bitmap, a, _ = legs
    host = PluginHost()
    store = await BitmapStore.open(host, str(bitmap))
    source = await activate(host, str(a))
    target = await host.activate("memory://mdraid-target", create=CreateRequest(SIZE // 4096))
    try:
        with pytest.raises(NotDurableError, match="target leg .* is not durable"):
            await resync(store, source, [target])
    finally:
        for area in (source, target):
            await area.deactivate()
        await store.close()
        forget("mdraid-target")


def test_ctrl_c_keeps_progress_and_exits_130(tmp_path: Path) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    size = 4 << 20
    make_image(a, size, 0x5A)
    make_image(b, size, 0x00)
    cli("bitmap", "create", str(bitmap), "--sync-size", str(size), "--chunk-size", "16K")
    total = read_bitmap(bitmap).count_dirty()
    proc = subprocess.Popen(
        ["swapio", "bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b),
         "--max-speed", "2M"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while read_bitmap(bitmap).count_dirty() == total and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr.strip() == "swapio: resync interrupted; progress is kept, run it again"
    left = read_bitmap(bitmap).count_dirty()
    assert 0 < left < total
    swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b))
    assert a.read_bytes() == b.read_bytes()


async def test_a_target_failing_mid_resync_keeps_the_progress_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    make_image(a, SIZE, 0x3C)
    make_image(b, SIZE)
    host = PluginHost()
    new = Bitmap.create(sync_size_bytes=SIZE, chunk_size=CHUNK, all_dirty=False)
    dirty = range(0, CHUNKS, 2)  # no two adjacent: one write per chunk, 16 per batch
    for chunk in dirty:
        new.set(chunk)
    await (await BitmapStore.create(host, str(bitmap), new)).close()
    real_copy = _copier._Target.copy_batch
    calls = 0

    async def failing_copy(
        self: _copier._Target, source: object, runs: list[_copier._Run]
    ) -> list[BaseException | None]:
        nonlocal calls
        results: list[BaseException | None] = []
        for run in runs:  # run by run: the 21st copy and those after it fail
            calls += 1
            if calls > 20:
                results.append(BackendIOError("injected: target went away"))
            else:
                results += await real_copy(self, source, [run])  # type: ignore[arg-type]
        return results

    monkeypatch.setattr(_copier._Target, "copy_batch", failing_copy)
    store = await BitmapStore.open(host, str(bitmap))
    areas = [await activate(host, str(a)), await activate(host, str(b))]
    try:
        with pytest.raises(BackendIOError, match="target went away"):
            await resync(store, areas[0], areas[1:])
    finally:
        for area in areas:
            await area.deactivate()
        await store.close()
    left = read_bitmap(bitmap).count_dirty()
    assert 0 < left < len(dirty)  # copies that completed before the failure stay done
    monkeypatch.undo()
    store = await BitmapStore.open(host, str(bitmap))
    areas = [await activate(host, str(a)), await activate(host, str(b))]
    try:
        report = await resync(store, areas[0], areas[1:])
    finally:
        for area in areas:
            await area.deactivate()
        await store.close()
    assert report.copied == left
    data_a, data_b = a.read_bytes(), b.read_bytes()
    for chunk in dirty:
        assert (
            data_b[chunk * CHUNK : (chunk + 1) * CHUNK]
            == data_a[chunk * CHUNK : (chunk + 1) * CHUNK]
        )


def test_dry_run_leaves_an_mdadm_sized_bitmap_file_untouched(tmp_path: Path) -> None:
    bitmap, a, b = tmp_path / "bm", tmp_path / "a", tmp_path / "b"
    make_image(a, SIZE, 1)
    make_image(b, SIZE, 2)
    image = Bitmap.create(sync_size_bytes=SIZE, chunk_size=CHUNK).encode()
    bitmap.write_bytes(image)  # 256 + 8 bytes, as mdadm's CreateBitmap leaves it
    before = digest(bitmap, a, b)
    swapio("bitmap", "resync", str(bitmap), "--source", str(a), "--target", str(b), "--dry-run",
           check_rc=8)  # fmt: skip
    swapio("bitmap", "examine", str(bitmap))
    assert digest(bitmap, a, b) == before


async def test_a_copy_finishing_during_a_barrier_is_flushed_by_the_next(tmp_path: Path) -> None:
    leg = tmp_path / "leg"
    make_image(leg, SIZE)
    host = PluginHost()
    area = await activate(host, str(leg))
    target = await _copier._Target.open(area, batched=True)
    flushes: list[int] = []
    real_write = area.write
    b_done = asyncio.Event()

    async def durable_write(slot: int, data: bytes | bytearray | memoryview) -> None:
        flushes.append(slot)
        await b_done.wait()  # the barrier's fdatasync is "in flight" while B completes
        await real_write(slot, data)

    area.write = durable_write  # type: ignore[method-assign]
    try:
        await target.write(0, page_of(1))

        async def copy_b() -> None:
            await target.write(4096, page_of(2))
            b_done.set()

        await asyncio.gather(target.barrier(), copy_b())
        await target.barrier()  # B completed after the first barrier began: flush again
        assert len(flushes) == 2
        await target.barrier()  # nothing new since: no flush
        assert len(flushes) == 2
    finally:
        await target.close()
        area.write = real_write  # type: ignore[method-assign]
        await area.deactivate()


def page_of(fill: int) -> bytes:
    return bytes([fill]) * 4096
