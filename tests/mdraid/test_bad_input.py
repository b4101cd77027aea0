"""Bad input to `swapio bitmap`: one clear line on stderr, non-zero exit, nothing written."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from swapio_mdraid import Bitmap

from tests.mdraid.helpers import CliResult, make_image, run_cli

CHUNK = 65536
SIZE = 16 * CHUNK


def digest_dir(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def run(*args: str) -> CliResult:
    """In process, as the command line would run it (the CLI itself is exercised end to end
    by the subprocess tests in test_resync.py and test_crash.py)."""
    return run_cli(*args)


def write_bitmap(path: Path, image: bytes) -> None:
    path.write_bytes(image + bytes(-len(image) % 4096))


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """A dirty bitmap and two legs that differ in its dirty chunks."""
    write_bitmap(tmp_path / "bm", Bitmap.create(sync_size_bytes=SIZE, chunk_size=CHUNK).encode())
    make_image(tmp_path / "a", SIZE, 0x11)
    make_image(tmp_path / "b", SIZE, 0x22)
    return tmp_path


def corrupt_magic(root: Path) -> None:
    data = bytearray((root / "bm").read_bytes())
    data[0:4] = b"XXXX"
    (root / "bm").write_bytes(data)


def truncate(root: Path) -> None:
    # an mdadm-style unaligned file that stops short of its bits
    image = Bitmap.create(sync_size_bytes=SIZE * 64, chunk_size=512).encode()
    (root / "bm").write_bytes(image[:1000])


def version(number: int) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        data = bytearray((root / "bm").read_bytes())
        data[4:8] = number.to_bytes(4, "little")
        (root / "bm").write_bytes(data)

    return change


def wrong_sync_size(root: Path) -> None:
    write_bitmap(root / "bm", Bitmap.create(sync_size_bytes=SIZE * 2, chunk_size=CHUNK).encode())


def grow_leg(root: Path) -> None:
    with open(root / "b", "ab") as fh:
        fh.write(bytes(4096))


def no_change(root: Path) -> None:
    pass


RESYNC = ["bitmap", "resync", "{bm}", "--source", "{a}", "--target", "{b}"]


@pytest.mark.parametrize(
    ("prepare", "argv", "message", "rc"),
    [
        (corrupt_magic, RESYNC, "bad bitmap magic 0x58585858, expected 0x6d746962", 3),
        (truncate, RESYNC, "bitmap truncated", 3),
        (version(5), RESYNC, "version 5 .md-cluster. is not supported", 3),
        (version(7), RESYNC, "unrecognized bitmap superblock version 7; expected 3 or 4", 3),
        (wrong_sync_size, RESYNC, "does not match the legs", 3),
        (grow_leg, RESYNC, "legs differ in size", 3),
        (
            no_change,
            ["bitmap", "resync", "{bm}", "--source", "{root}/missing", "--target", "{b}"],
            "no such file",
            3,
        ),
        (
            no_change,
            ["bitmap", "resync", "{bm}", "--source", "{a}", "--target", "{a}"],
            "is the --source",
            2,
        ),
        (
            no_change,
            [
                "bitmap",
                "resync",
                "{bm}",
                "--source",
                "{a}",
                "--target",
                "file://{b}?durable=1&page_size=512",
            ],
            "legs differ in page size",
            3,
        ),
        (
            no_change,
            ["bitmap", "resync", "{bm}", "--source", "{a}", "--target", "file://{a}"],
            "is the --source",
            2,
        ),
        (corrupt_magic, ["bitmap", "examine", "{bm}"], "bad bitmap magic", 3),
        (truncate, ["bitmap", "examine", "{bm}"], "bitmap truncated", 3),
        (version(2), ["bitmap", "dirty", "{bm}", "--offset", "0", "--length", "1"], "version 2", 3),
        (
            no_change,
            ["bitmap", "dirty", "{bm}", "--offset", str(SIZE), "--length", "1"],
            "not inside the sync range",
            2,
        ),
        (
            no_change,
            ["bitmap", "create", "{root}/new", "--sync-size", "1M", "--chunk-size", "3000"],
            "not a power of two",
            2,
        ),
        (
            no_change,
            ["bitmap", "create", "{root}/new", "--sync-size", "1M", "--chunk-size", "256"],
            "below the minimum of 512",
            2,
        ),
        (
            no_change,
            ["bitmap", "create", "{bm}", "--sync-size", "1M", "--chunk-size", "4K"],
            "already exists",
            3,
        ),
    ],
)
def test_bad_input_is_refused_cleanly(
    setup: Path, prepare: Callable[[Path], None], argv: list[str], message: str, rc: int
) -> None:
    prepare(setup)
    before = digest_dir(setup)
    names = {"bm": setup / "bm", "a": setup / "a", "b": setup / "b", "root": setup}
    done = run(*(arg.format(**names) for arg in argv))
    assert done.returncode == rc, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("swapio: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in done.stderr
    assert digest_dir(setup) == before, "bad input must leave every file untouched"
