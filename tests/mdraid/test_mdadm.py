"""Interop with the real mdadm (4.2): `mdadm --examine-bitmap` reads swapio's bitmap files
and swapio reads files in the format mdadm's CreateBitmap writes.

mdadm exits 0 even on a bad magic or a truncated file, so every check looks at the Magic
line, stderr and the counts, not only the exit status.  mdadm prints counts, never
positions; positions are checked by moving the sync size across a set bit (k chunks: 0
dirty; k + 1 chunks: 1 dirty), which pins the LSB-first order on mdadm's side too.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from swapio_mdraid import BITMAP_MAGIC, Bitmap, BitmapState

from tests.mdraid.helpers import cli

LAYOUT = struct.Struct("<II16sQQQIIIIII64s120s")


def mdadm_examine(path: Path) -> tuple[list[str], str]:
    mdadm = shutil.which("mdadm")
    assert mdadm is not None, "mdadm is required (Debian package mdadm, installed by the setup)"
    done = subprocess.run(
        [mdadm, "--examine-bitmap", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip("\n").splitlines(), done.stderr


def fields(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        label, _, value = line.partition(" : ")
        out[label.strip()] = value
    return out


def swapio_examine(path: Path) -> list[str]:
    return cli("bitmap", "examine", str(path)).rstrip("\n").splitlines()


def assert_same_view(path: Path) -> dict[str, str]:
    theirs, stderr = mdadm_examine(path)
    assert stderr == ""
    ours = swapio_examine(path)
    assert fields(theirs)["Magic"] == "6d746962"
    assert ours == theirs
    return fields(theirs)


def craft_mdadm_file(
    path: Path,
    *,
    sync_sectors: int,
    chunksize: int,
    version: int = 4,
    state: int = 0,
    events: int = 0,
    write_behind: int = 0,
    daemon_sleep: int = 5,
    uuid: bytes = bytes(16),
    truncate_to: int | None = None,
) -> None:
    """What mdadm's CreateBitmap writes: the superblock, then 512-byte blocks of 0xff, then
    ftruncate to 256 + bits bytes (it cannot run here: it needs a kernel md array)."""
    sb = LAYOUT.pack(
        BITMAP_MAGIC, version, uuid, events, 0, sync_sectors, state, chunksize, daemon_sleep,
        write_behind, 0, 0, b"", bytes(120),
    )  # fmt: skip
    nbytes = ((sync_sectors * 512 + chunksize - 1) // chunksize + 7) // 8
    blocks = b"\xff" * (512 * -(-nbytes // 512))
    path.write_bytes(sb + blocks)
    with open(path, "r+b") as fh:
        fh.truncate(256 + nbytes if truncate_to is None else truncate_to)


@pytest.mark.parametrize(
    ("sync", "chunk", "clean"),
    [
        ("64M", "64K", False),
        ("64M", "64K", True),
        ("1G", "4K", False),
        ("3000K", "512", False),  # sync size not a multiple of 8 chunks
        ("5M", "1M", True),
        ("2T", "64M", False),
    ],
)
def test_mdadm_reads_swapio_created_bitmaps(
    tmp_path: Path, sync: str, chunk: str, clean: bool
) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", sync, "--chunk-size", chunk,
        *(["--clean"] if clean else []))  # fmt: skip
    seen = assert_same_view(path)
    ours = Bitmap.decode(path.read_bytes())
    assert seen["Bitmap"].startswith(f"{ours.chunks} bits (chunks), {ours.count_dirty()} dirty")
    assert seen["State"] == "OK"
    assert seen["Version"] == "4"


def test_mdadm_sees_the_same_dirty_count_after_dirty_ranges(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", "100M", "--chunk-size", "64K", "--clean")
    cli("bitmap", "dirty", str(path), "--offset", "0", "--length", "1")
    cli("bitmap", "dirty", str(path), "--offset", "1M", "--length", "200K")  # chunks 16..19
    cli("bitmap", "dirty", str(path), "--offset", str(100 * 2**20 - 1), "--length", "1")
    seen = assert_same_view(path)
    assert seen["Bitmap"] == "1600 bits (chunks), 6 dirty (0.4%)"
    assert list(Bitmap.decode(path.read_bytes()).dirty_chunks()) == [0, 16, 17, 18, 19, 1599]


@pytest.mark.parametrize("position", [1, 7, 8, 13, 2047, 2048, 30001])
def test_bit_positions_agree_with_mdadm(tmp_path: Path, position: int) -> None:
    chunk = 4096
    counts = []
    for chunks in (position, position + 1):
        path = tmp_path / f"bm{chunks}"
        cli("bitmap", "create", str(path), "--sync-size", str(chunks * chunk), "--chunk-size",
            "4K", "--clean")  # fmt: skip
        bitmap = Bitmap.decode(path.read_bytes())
        if position < bitmap.chunks:
            bitmap.set(position)
        else:  # past the last chunk: set the raw bit anyway, mdadm must not count it
            while len(bitmap.bits) <= position // 8:
                bitmap.bits.append(0)
            bitmap.bits[position // 8] |= 1 << (position % 8)
        path.write_bytes(bitmap.encode() + bytes(-len(bitmap.encode()) % 4096))
        theirs, stderr = mdadm_examine(path)
        assert stderr == ""
        counts.append(fields(theirs)["Bitmap"].split(", ")[1].split()[0])
    # with `position` chunks the bit lies past the end: mdadm counts 0; with one more, 1
    assert counts == ["0", "1"]


def test_mdadm_reads_a_bitmap_the_mirror_wrote(tmp_path: Path) -> None:
    import asyncio

    from swapio.area import CreateRequest
    from swapio.plugins import PluginHost
    from tests.mdraid.helpers import mirror_url, page

    async def work() -> None:
        url = mirror_url(str(tmp_path / "bm"), [str(tmp_path / "a"), str(tmp_path / "b")])
        area = await PluginHost().activate(url, create=CreateRequest(256, 4096))
        for slot in (0, 100, 255):
            await area.write(slot, page(slot))
        mirror = area.private
        await mirror.sweep()  # one sweep: the bits are still set
        await mirror.stop(clean=False)

    asyncio.run(work())
    seen = assert_same_view(tmp_path / "bm")
    assert seen["Bitmap"] == "16 bits (chunks), 3 dirty (18.8%)"
    assert int(seen["Events"]) >= 1


def test_swapio_reads_an_mdadm_created_file(tmp_path: Path) -> None:
    path = tmp_path / "md.bitmap"
    craft_mdadm_file(path, sync_sectors=2 * 1024 * 100, chunksize=65536)  # 100 MiB
    assert path.stat().st_size == 256 + 200  # 1600 bits, unaligned as mdadm leaves it
    before, _ = mdadm_examine(path)
    assert swapio_examine(path) == before
    assert path.stat().st_size == 456  # examine only reads (a padded copy)
    seen = fields(before)
    assert seen["Bitmap"] == "1600 bits (chunks), 1600 dirty (100.0%)"
    cli("bitmap", "dirty", str(path), "--offset", "0", "--length", "1")  # a write: padded
    assert path.stat().st_size == 4096
    after, stderr = mdadm_examine(path)  # mdadm does not mind the zeros
    assert after == before
    assert stderr == ""


def test_swapio_resyncs_with_an_mdadm_created_file(tmp_path: Path) -> None:
    bitmap = tmp_path / "md.bitmap"
    craft_mdadm_file(bitmap, sync_sectors=2 * 1024, chunksize=65536)  # 1 MiB legs
    (tmp_path / "a").write_bytes(b"\x42" * 2**20)
    (tmp_path / "b").write_bytes(bytes(2**20))
    cli("bitmap", "resync", str(bitmap), "--source", str(tmp_path / "a"),
        "--target", str(tmp_path / "b"))  # fmt: skip
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    seen = assert_same_view(bitmap)
    assert seen["Bitmap"] == "16 bits (chunks), 0 dirty (0.0%)"
    assert seen["Events"] == seen["Events Cleared"] == "1"


def test_version_3_state_write_behind_and_uuid(tmp_path: Path) -> None:
    path = tmp_path / "v3"
    craft_mdadm_file(path, sync_sectors=4096, chunksize=4096, version=3,
                     state=BitmapState.STALE, events=42, write_behind=256,
                     daemon_sleep=9, uuid=bytes(range(0xA0, 0xB0)))  # fmt: skip
    seen = assert_same_view(path)
    assert seen["Version"] == "3"
    assert seen["State"] == "Out of date"
    assert seen["Write Mode"] == "Allow write behind, max 256"
    assert seen["UUID"] == "a0a1a2a3:a4a5a6a7:a8a9aaab:acadaeaf"
    assert seen["Daemon"] == "9s flush period"
    assert seen["Events"] == "42"


def test_unknown_state_values_print_unknown(tmp_path: Path) -> None:
    path = tmp_path / "odd"
    craft_mdadm_file(path, sync_sectors=4096, chunksize=4096, state=3)
    assert assert_same_view(path)["State"] == "Unknown"


@pytest.mark.parametrize(
    "sync_sectors",
    [8, 9999, 10240, 2**22 - 2, 2**22, 3 * 2**31 + 5, 2**33 - 2, 2**33, 5 * 2**32 + 7],
)
def test_sync_size_human_formatting_matches(tmp_path: Path, sync_sectors: int) -> None:
    path = tmp_path / "big"
    craft_mdadm_file(path, sync_sectors=sync_sectors, chunksize=2**30)
    assert_same_view(path)


def test_truncated_file_mdadm_warns_swapio_refuses(tmp_path: Path) -> None:
    path = tmp_path / "short"
    craft_mdadm_file(path, sync_sectors=2 * 1024 * 100, chunksize=4096, truncate_to=300)
    _lines, stderr = mdadm_examine(path)
    assert "not large enough" in stderr
    done = subprocess.run(["swapio", "bitmap", "examine", str(path)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 3
    assert "bitmap truncated" in done.stderr
    assert path.stat().st_size == 300


def test_bad_magic_mdadm_complains_swapio_refuses(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    craft_mdadm_file(path, sync_sectors=4096, chunksize=4096)
    data = bytearray(path.read_bytes())
    data[0:4] = b"\0\0\0\0"
    path.write_bytes(data)
    lines, stderr = mdadm_examine(path)
    assert fields(lines)["Magic"] == "00000000"
    assert "invalid bitmap magic" in stderr
    done = subprocess.run(["swapio", "bitmap", "examine", str(path)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 3
    assert "bad bitmap magic" in done.stderr


@given(
    version=st.sampled_from([3, 4]),
    events=st.integers(0, 2**64 - 1),
    events_cleared=st.integers(0, 2**64 - 1),
    state=st.integers(0, 7),
    chunk_shift=st.integers(9, 31),
    daemon_sleep=st.integers(1, 100000),
    write_behind=st.integers(0, 16383),
    uuid=st.binary(min_size=16, max_size=16),
    sync_sectors=st.integers(1, 2**40),
    seed=st.integers(0, 2**32),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_examine_matches_mdadm_on_random_superblocks(
    tmp_path: Path,
    version: int,
    events: int,
    events_cleared: int,
    state: int,
    chunk_shift: int,
    daemon_sleep: int,
    write_behind: int,
    uuid: bytes,
    sync_sectors: int,
    seed: int,
) -> None:
    chunksize = 1 << chunk_shift
    # keep the file small: at most 2**15 chunks
    sync_sectors = min(sync_sectors, (chunksize // 512) << 15)
    chunks = (sync_sectors * 512 + chunksize - 1) // chunksize
    sb = LAYOUT.pack(
        BITMAP_MAGIC, version, uuid, events, events_cleared, sync_sectors, state, chunksize,
        daemon_sleep, write_behind, 0, 0, b"", bytes(120),
    )  # fmt: skip
    bits = random.Random(seed).randbytes((chunks + 7) // 8)
    path = tmp_path / f"rand-{seed}"
    path.write_bytes(sb + bits + bytes(-(256 + len(bits)) % 4096))
    assert_same_view(path)
