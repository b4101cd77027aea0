"""Issue 15's flashlog defects, each pinned by a test that failed before its fix.

The user-visible contract, through the real ``swapio`` command: one ``swapio: error:`` line,
the documented exit code, nothing left behind; foreign images from the real ``mkfs.jffs2``
(and ``sumtool``) of mtd-utils.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from swapio_flashlog._compress import lzo1x_decompress
from swapio_flashlog.device import sidecar_path
from swapio_flashlog.errors import CompressionError
from swapio_flashlog.log import FlashLog

from .test_hardening import AREA, USAGE, files_in, make_image, one_line_error, run

EB = 16384


def swapio_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "swapio", *args]


def mkfs(tmp: Path, name: str, *extra: str, files: dict[str, bytes] | None = None) -> Path:
    root = tmp / f"{name}-root"
    root.mkdir()
    for fname, data in (files or {"a.txt": b"hello\n"}).items():
        (root / fname).write_bytes(data)
    image = tmp / name
    subprocess.run(
        ["mkfs.jffs2", "-r", str(root), "-o", str(image), "-e", str(EB), *extra],
        check=True,
        capture_output=True,
    )
    return image


def compressible(n: int) -> bytes:
    words = [b"flash", b"log", b"swap", b"page", b"erase", b"block", b"node", b"jffs2"]
    out = bytearray()
    i = 0
    while len(out) < n:
        out += words[(i * 7 + i // 3) % len(words)] + b" "
        i += 1
    return bytes(out[:n])


# --- format and create check free space, and leave nothing when killed -------------------


@pytest.mark.parametrize("how", ["format", "create"])
def test_an_image_larger_than_the_free_space_is_refused_before_writing(
    tmp_path: Path, how: str
) -> None:
    image = tmp_path / "huge.img"
    if how == "format":
        cmd = swapio_cmd("flash", "format", str(image), "--size", "1048576GiB")
    else:
        cmd = swapio_cmd("create", f"flashlog://{image}?size={1 << 50}", "--pages", "16")
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    one_line_error(proc, AREA, "free on that filesystem")
    assert files_in(tmp_path) == []


def test_a_format_killed_half_way_leaves_no_image_under_its_name(tmp_path: Path) -> None:
    image = tmp_path / "big.img"
    proc = subprocess.Popen(
        swapio_cmd("flash", "format", str(image), "--size", "4GiB"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(n.startswith(".big.img.swapio-format-") for n in os.listdir(tmp_path)):
            assert proc.poll() is None, "format ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)  # part-way through writing the erased flash
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not image.exists()
    assert not Path(sidecar_path(str(image))).exists()
    # the next format of the same name sweeps what the killed one left
    one = run("flash", "format", str(image), "--size", "1MiB")
    assert one.returncode == 0, one.stderr
    assert files_in(tmp_path) == ["big.img", "big.img.flash"]


# --- a FIFO, a NUL byte, a truncated image --------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["flash", "inspect", "{fifo}"],
        ["flash", "gc", "{fifo}"],
        ["flash", "inspect", "{fifo}", "--erase-block", "64KiB"],
        ["info", "flashlog://{fifo}"],
    ],
)
def test_a_fifo_given_as_an_image_is_refused_at_once(tmp_path: Path, args: list[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cmd = swapio_cmd(*(a.format(fifo=fifo) for a in args))
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
    one_line_error(proc, AREA, "not a regular file or a block device")


@pytest.mark.parametrize("verb", ["info", "create"])
def test_a_nul_byte_in_a_flashlog_path_is_one_usage_error(tmp_path: Path, verb: str) -> None:
    url = f"flashlog://{tmp_path}/a%00b.img"
    args = ["info", url] if verb == "info" else ["create", url, "--pages", "4"]
    one_line_error(run(*args), USAGE, "NUL byte")
    assert files_in(tmp_path) == []


def test_a_truncated_image_exits_3_with_or_without_its_sidecar(tmp_path: Path) -> None:
    image = tmp_path / "t.img"
    make_image(image)
    os.truncate(image, 300_000)
    with_sidecar = [
        run("info", f"flashlog://{image}").returncode,
        run("flash", "inspect", str(image)).returncode,
    ]
    os.unlink(sidecar_path(str(image)))
    without = [
        run("info", f"flashlog://{image}").returncode,
        run("info", f"flashlog://{image}?erase_block=65536").returncode,
        run("flash", "inspect", str(image)).returncode,
        run("flash", "inspect", str(image), "--erase-block", "64KiB").returncode,
    ]
    assert with_sidecar == [AREA] * 2
    assert without == [AREA] * 4


# --- foreign images from mkfs.jffs2 ---------------------------------------------------------


def test_an_lzo_compressed_image_reads_back_its_files(tmp_path: Path) -> None:
    files = {"text.txt": compressible(20000), "zeros.bin": bytes(9000) + b"x" * 3000}
    image = mkfs(
        tmp_path, "lzo.img", "--pad=262144", "-X", "lzo", "-x", "zlib", "-x", "rtime", files=files
    )
    log = FlashLog.open(str(image), readonly=True)
    try:
        for name, data in files.items():
            ino = log.lookup("/" + name)
            out = memoryview(bytearray(log.file(ino).isize))
            log.read(ino, 0, out)
            assert bytes(out) == data
    finally:
        log.close()
    raw = image.read_bytes()
    assert _inode_compressors(raw) >= {7}  # the image really holds LZO nodes


def _inode_compressors(raw: bytes) -> set[int]:
    seen = set()
    at = 0
    while at + 68 <= len(raw):
        magic, nodetype, totlen = (
            int.from_bytes(raw[at : at + 2], "little"),
            int.from_bytes(raw[at + 2 : at + 4], "little"),
            int.from_bytes(raw[at + 4 : at + 8], "little"),
        )
        if magic == 0x1985 and totlen >= 12:
            if nodetype == 0xE002:
                seen.add(raw[at + 56])
            at += (totlen + 3) & ~3
        else:
            at += 4
    return seen


def test_lzo_streams_that_lie_are_a_compression_error_not_a_crash() -> None:
    for bad in (b"", b"\x00", b"\x15abcd", b"\x11\x00\x00", b"\x20\x00\xff\xff\x11\x00\x00"):
        with pytest.raises(CompressionError):
            lzo1x_decompress(bad, 64)


def test_an_image_without_pad_says_exactly_how_to_pad_it_and_that_works(tmp_path: Path) -> None:
    image = mkfs(tmp_path, "nopad.img", files={"b.bin": os.urandom(30000)})
    size = image.stat().st_size
    assert size % EB
    proc = run("flash", "inspect", str(image))
    one_line_error(proc, AREA, "pad it", "head -c", "--pad=")
    command = proc.stderr.split("pad it with erased flash (0xFF) to ")[1].split(": ", 1)[1]
    command = command.split(" (or run")[0]
    subprocess.run(["sh", "-c", command], check=True)
    assert image.stat().st_size == 5 * EB
    ok = run("flash", "inspect", "--json", str(image))
    assert ok.returncode == 0, ok.stderr
    assert '"b.bin": 30000' in ok.stdout


def test_the_erase_block_of_an_image_without_sidecar_comes_from_its_cleanmarkers(
    tmp_path: Path,
) -> None:
    image = mkfs(tmp_path, "cm.img", "--pad=262144", files={"b.bin": os.urandom(40000)})
    log = FlashLog.open(str(image), readonly=True)
    try:
        assert log.geometry.erase_block == EB
        assert log.file(log.lookup("/b.bin")).isize == 40000
    finally:
        log.close()


def test_the_erase_block_of_an_image_without_sidecar_comes_from_its_summaries(
    tmp_path: Path,
) -> None:
    plain = mkfs(tmp_path, "plain.img", "-n", "--pad=262144", files={"b.bin": os.urandom(40000)})
    image = tmp_path / "sum.img"
    subprocess.run(
        ["sumtool", "-n", "-e", str(EB), "-i", str(plain), "-o", str(image), "-p"],
        check=True,
        capture_output=True,
    )
    log = FlashLog.open(str(image), readonly=True)
    try:
        assert log.geometry.erase_block == EB
        assert log.file(log.lookup("/b.bin")).isize == 40000
    finally:
        log.close()


def test_mtd_utils_are_installed() -> None:
    for tool in ("mkfs.jffs2", "sumtool"):
        assert shutil.which(tool), f"{tool} (mtd-utils) is needed: scripts/setup-system.sh"


@pytest.mark.parametrize(
    ("query", "needle"),
    [("erase_block=3000", "not a power of two"), ("erase_block=4096", "holds no 4096-byte")],
)
def test_an_impossible_erase_block_in_a_create_url_is_one_usage_error(
    tmp_path: Path, query: str, needle: str
) -> None:
    proc = run("create", f"flashlog://{tmp_path}/e.img?{query}", "--pages", "4")
    one_line_error(proc, USAGE, needle)
    assert files_in(tmp_path) == []
