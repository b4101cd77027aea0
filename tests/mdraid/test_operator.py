"""Operator habits (issue 14): output that scales, verify that tells, units as dd reads them.

Each test fails on the code before the change it specifies.
"""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import click
import pytest
from swapio_mdraid import Bitmap
from swapio_mdraid.cli import _Bar, bitmap, parse_size
from swapio_mdraid.errors import BitmapParameterError

from tests.mdraid.helpers import cli, make_image, mirror_url, run_cli

CHUNK = 65536
SIZE = 64 * CHUNK


def write_bitmap(path: Path, dirty: list[int], *, size: int = SIZE, chunk: int = CHUNK) -> None:
    bitmap = Bitmap.create(sync_size_bytes=size, chunk_size=chunk, all_dirty=False)
    for c in dirty:
        bitmap.set(c)
    image = bitmap.encode()
    path.write_bytes(image + bytes(-len(image) % 4096))


def legs(tmp_path: Path, *, size: int = SIZE) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    make_image(a, size, 0x11)
    make_image(b, size, 0x11)
    return a, b


def poke(path: Path, offset: int, data: bytes = b"\xee") -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def resync(tmp_path: Path, *extra: str, rc: int = 0) -> str:
    a, b = tmp_path / "a", tmp_path / "b"
    return cli("bitmap", "resync", str(tmp_path / "bm"), "--source", str(a), "--target", str(b),
               *extra, rc=rc)  # fmt: skip


# --- output as merged ranges ------------------------------------------------------------


def test_dry_run_prints_merged_chunk_ranges_with_counts(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", [*range(10), 20])
    out = resync(tmp_path, "--dry-run", rc=8).splitlines()
    assert out[0] == "11 of 64 chunks would be copied, in 2 ranges"
    assert out[1].strip() == f"chunks 0..9 (10) bytes 0..{10 * CHUNK - 1}"
    assert out[2].strip() == f"chunk 20 bytes {20 * CHUNK}..{21 * CHUNK - 1}"
    assert len(out) == 3


def test_dry_run_shows_at_most_20_ranges_and_says_how_many_more(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", list(range(0, 64, 2)))  # 32 separate chunks
    out = resync(tmp_path, "--dry-run", rc=8).splitlines()
    assert len(out) == 1 + 20 + 1
    assert out[-1].strip() == "... 12 more ranges (--list or --json for all)"


def test_list_prints_every_chunk(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", list(range(0, 64, 2)))
    out = resync(tmp_path, "--dry-run", "--list", rc=8).splitlines()
    assert len(out) == 1 + 32
    assert out[1].strip().startswith("chunk 0 bytes 0..")


def test_resync_summary_says_the_rest_was_clean(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", [1, 2, 3])
    out = resync(tmp_path)
    assert "resynced 3 dirty chunks" in out
    assert "the other 61 of 64 were clean" in out


# --- verify -----------------------------------------------------------------------------


def test_verify_marks_differences_outside_the_bitmap_and_exits_9(tmp_path: Path) -> None:
    _, b = legs(tmp_path)
    write_bitmap(tmp_path / "bm", [5])
    poke(b, 5 * CHUNK)
    poke(b, 40 * CHUNK + 7)  # bit 40 is clear: the bitmap missed this write
    result = run_cli("bitmap", "resync", str(tmp_path / "bm"), "--source", str(tmp_path / "a"),
                     "--target", str(b), "--verify")  # fmt: skip
    assert result.returncode == 9, result.stderr
    lines = result.stdout.splitlines()
    assert "2 differed (1 outside the bitmap), repaired" in lines[1]
    assert any("chunk 40" in line and "outside the bitmap" in line for line in lines)
    assert not any("chunk 5 " in line and "outside" in line for line in lines)
    assert "bitmap did not cover every write" in result.stderr
    assert (tmp_path / "a").read_bytes() == b.read_bytes()  # repaired all the same


def test_verify_dry_run_json_lists_the_chunks_a_repair_would_copy(tmp_path: Path) -> None:
    _, b = legs(tmp_path)
    write_bitmap(tmp_path / "bm", [5])
    poke(b, 5 * CHUNK)
    doc = json.loads(resync(tmp_path, "--verify", "--dry-run", "--json", rc=8))
    assert doc["would_copy"] == [5]
    assert doc["mismatched"] == [5]


def test_verify_charges_a_sub_page_difference_to_its_own_chunk(tmp_path: Path) -> None:
    """512-byte chunks on 4 KiB pages: a byte in chunk 3 differs."""
    size = 64 * 4096
    _, b = legs(tmp_path, size=size)
    write_bitmap(tmp_path / "bm", [3], size=size, chunk=512)
    poke(b, 3 * 512 + 100)
    dry = json.loads(resync(tmp_path, "--verify", "--dry-run", "--json", rc=8))
    assert dry["mismatched"] == [3]
    done = json.loads(resync(tmp_path, "--verify", "--json"))
    assert done["mismatched"] == [3]
    assert done["copied"] == 1
    assert (tmp_path / "a").read_bytes() == b.read_bytes()


# --- units and options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1K", 1024), ("1KiB", 1024), ("1kB", 1000), ("1KB", 1000),
        ("1M", 1 << 20), ("1MiB", 1 << 20), ("1MB", 10**6),
        ("1G", 1 << 30), ("1GB", 10**9), ("1.5M", 3 << 19), ("1.5MB", 1_500_000),
    ],
)  # fmt: skip
def test_sizes_read_as_dd_and_numfmt_read_them(text: str, value: int) -> None:
    assert parse_size(text, "size") == value


def test_a_rate_may_end_in_per_second() -> None:
    assert parse_size("8M/s", "max speed", rate=True) == 8 << 20
    with pytest.raises(BitmapParameterError, match="is not a size"):
        parse_size("8M/s", "chunk size")


def test_a_fraction_of_a_byte_is_refused() -> None:
    with pytest.raises(BitmapParameterError, match="whole number of bytes"):
        parse_size("1.3", "size")


def test_max_speed_zero_is_an_error(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", [1])
    result = run_cli("bitmap", "resync", str(tmp_path / "bm"), "--source", str(tmp_path / "a"),
                     "--target", str(tmp_path / "b"), "--max-speed", "0")  # fmt: skip
    assert result.returncode == 2
    assert "--max-speed 0" in result.stderr
    assert Bitmap.decode((tmp_path / "bm").read_bytes()).test(1)  # nothing was done


def test_max_speed_takes_a_rate_with_per_second(tmp_path: Path) -> None:
    legs(tmp_path)
    write_bitmap(tmp_path / "bm", [1])
    resync(tmp_path, "--max-speed", "64M/s")


def test_bitmap_create_uses_a_random_uuid(tmp_path: Path) -> None:
    for name in ("one", "two"):
        cli("bitmap", "create", str(tmp_path / name), "--sync-size", "1M", "--chunk-size", "64K")
    uuids = [
        json.loads(cli("bitmap", "examine", str(tmp_path / n), "--json"))["uuid"]
        for n in ("one", "two")
    ]
    assert uuids[0] != uuids[1]
    assert "00000000:00000000:00000000:00000000" not in uuids


def test_examine_takes_several_files(tmp_path: Path) -> None:
    for name in ("one", "two"):
        cli("bitmap", "create", str(tmp_path / name), "--sync-size", "1M", "--chunk-size", "64K")
    out = cli("bitmap", "examine", str(tmp_path / "one"), str(tmp_path / "two"))
    assert f"Filename : {tmp_path / 'one'}" in out
    assert f"Filename : {tmp_path / 'two'}" in out
    docs = json.loads(
        cli("bitmap", "examine", str(tmp_path / "one"), str(tmp_path / "two"), "--json")
    )
    assert [d["filename"] for d in docs] == [str(tmp_path / "one"), str(tmp_path / "two")]


def test_a_mirror_of_plain_path_legs_is_created_with_8k_pages(tmp_path: Path) -> None:
    url = mirror_url(str(tmp_path / "bm"), [str(tmp_path / "l0"), str(tmp_path / "l1")])
    cli("create", url, "--pages", "16", "--page-size", "8192")
    assert (tmp_path / "l0").stat().st_size == 16 * 8192
    assert (tmp_path / "l1").stat().st_size == 16 * 8192


# --- progress, interruption -------------------------------------------------------------


def test_progress_line_has_percent_bytes_rate_eta_and_redraws_at_most_10_a_second() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = _Bar("resync", CHUNK, enabled=True, stream=out, clock=lambda: now[0])
    for done in range(1, 1001):
        now[0] = done * 0.0005  # 1000 chunks in 0.5 s
        bar(done, 1000)
    assert bar.draws <= 0.5 * _Bar.HZ + 2
    last = out.getvalue().split("\r")[-1]
    assert "1000/1000" in last
    assert "100.0%" in last
    assert "62.5 MiB" in last  # 1000 chunks of 64 KiB
    assert "/s" in last
    assert "ETA" in last


def _on_a_terminal(args: list[str]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=60, check=False)
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
    return proc.returncode, seen


def test_a_resync_on_a_terminal_says_how_much_was_already_clean(tmp_path: Path) -> None:
    a, b = legs(tmp_path)
    write_bitmap(tmp_path / "bm", [1, 2, 3, 9])
    rc, seen = _on_a_terminal(
        ["swapio", "bitmap", "resync", str(tmp_path / "bm"), "--source", str(a),
         "--target", str(b)]
    )  # fmt: skip
    assert rc == 0
    assert b"4 dirty chunks to copy; 60 of 64 already clean" in seen


def _interrupt(tmp_path: Path, sig: int) -> subprocess.CompletedProcess[str]:
    size = 128 * CHUNK
    a, b = legs(tmp_path, size=size)
    make_image(a, size, 0x42)
    write_bitmap(tmp_path / "bm", list(range(128)), size=size)
    proc = subprocess.Popen(
        ["swapio", "bitmap", "resync", str(tmp_path / "bm"), "--source", str(a),
         "--target", str(b), "--max-speed", "2M", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)  # about a third of the 8 MiB at 2 MiB/s
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(("sig", "rc", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                  (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_an_interrupted_resync_prints_its_json_and_keeps_progress(
    tmp_path: Path, sig: int, rc: int, word: str
) -> None:
    done = _interrupt(tmp_path, sig)
    assert done.returncode == rc, done.stderr
    assert word in done.stderr
    doc = json.loads(done.stdout)
    assert doc["interrupted"] is True
    assert 0 < doc["copied"] < 128
    left = Bitmap.decode((tmp_path / "bm").read_bytes()).count_dirty()
    assert left == doc["dirty_after"]
    assert 0 < left < 128


# --- messages -----------------------------------------------------------------------------


def test_growing_an_mdadm_sized_bitmap_file_is_said(tmp_path: Path) -> None:
    legs(tmp_path)
    bitmap = Bitmap.create(sync_size_bytes=SIZE, chunk_size=CHUNK, all_dirty=False)
    bitmap.set(3)
    (tmp_path / "bm").write_bytes(bitmap.encode())  # 256 + 8 bytes, as mdadm leaves it
    result = run_cli("bitmap", "resync", str(tmp_path / "bm"), "--source", str(tmp_path / "a"),
                     "--target", str(tmp_path / "b"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'bm'}: padded from 264 to 4096 bytes" in result.stderr


def test_errors_name_legs_as_typed_not_as_internal_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a", SIZE)
    make_image(tmp_path / "b", 2 * SIZE)
    write_bitmap(tmp_path / "bm", [1])
    result = run_cli("bitmap", "resync", "bm", "--source", "a", "--target", "b")
    assert result.returncode == 3
    assert "source a has" in result.stderr
    assert "target b has" in result.stderr
    assert "file://" not in result.stderr
    assert "durable=1" not in result.stderr


# --- help -------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["create", "examine", "dirty", "resync"])
def test_every_bitmap_verb_has_examples_and_every_option_a_description(verb: str) -> None:
    command = bitmap.commands[verb]
    assert "Examples:" in (command.help or "")
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert undocumented == []


def test_target_says_it_repeats() -> None:
    out = cli("bitmap", "resync", "--help")
    assert "repeat it for several" in out
