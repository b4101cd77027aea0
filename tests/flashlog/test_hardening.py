"""Defects a review found, each pinned by a test that failed before its fix.

Most run the installed ``swapio`` command (the user-visible contract: one ``swapio: error:``
line, the documented exit code, nothing left behind); the lock is tested against a real
second process, the full disk on a real tmpfs (``unshare -rm``), block devices on a real
loop device (``losetup``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from swapio_flashlog.device import FlashDevice, Geometry, image_size, sidecar_path
from swapio_flashlog.errors import FileNameError, ImageBusyError
from swapio_flashlog.log import FlashLog, capacity_chunks

from swapio import CreateRequest, PluginHost
from swapio.errors import UsageError

USAGE, AREA, FAILURE = 2, 3, 1


def run(*args: str, dev: bool = False) -> subprocess.CompletedProcess[str]:
    """The real command (``python -m swapio``, optionally under ``-X dev``)."""
    flags = ["-X", "dev"] if dev else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "swapio", *args], check=False, capture_output=True, text=True
    )


def one_line_error(proc: subprocess.CompletedProcess[str], rc: int, *needles: str) -> None:
    assert proc.returncode == rc, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("swapio: error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def make_image(path: Path, size: int = 1 << 20, pages: int = 16) -> None:
    log = FlashLog.format(str(path), Geometry(size, 65536))
    ino = log.create_file("/swapfile", pages * 4096)
    for slot in range(pages):
        log.write(ino, slot * 4096, bytes([slot + 1]) * 4096)
    log.close()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- 1. one owner per image -------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from swapio import PluginHost

    async def main() -> None:
        area = await PluginHost().activate(sys.argv[1])
        await area.write(0, bytes([0xAB]) * 4096)
        print("ready", flush=True)
        sys.stdin.readline()
        await area.write(1, bytes([0xCD]) * 4096)
        await area.deactivate()

    asyncio.run(main())
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A second process with the image mounted through the plugin (and written to)."""
    image = tmp_path / "f.img"
    make_image(image)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"flashlog://{image}?name=/swapfile"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:  # closes the pipes and reaps it
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            yield image, proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_second_process_is_refused_while_the_image_is_mounted(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    image, proc = holder
    before = image.read_bytes()
    with pytest.raises(ImageBusyError, match="is in use by another process"):
        FlashLog.open(str(image))
    with pytest.raises(ImageBusyError, match="is in use by another process"):
        FlashLog.open(str(image), readonly=True)
    for args in (
        ["flash", "inspect", str(image)],
        ["flash", "gc", str(image)],
        ["info", f"flashlog://{image}?name=/swapfile"],
        ["write", f"flashlog://{image}?name=/swapfile", "--slot", "2", "--from", "/dev/zero"],
    ):
        one_line_error(run(*args), AREA, "is in use by another process")
    assert image.read_bytes() == before  # the refused openers wrote nothing
    # the holder keeps working and, once it has let go, everything it wrote is there
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0
    log = FlashLog.open(str(image), readonly=True)
    try:
        ino = log.lookup("/swapfile")
        for slot, want in ((0, 0xAB), (1, 0xCD), (2, 3)):
            buf = bytearray(4096)
            log.read(ino, slot * 4096, memoryview(buf))
            assert buf == bytes([want]) * 4096, slot
    finally:
        log.close()


def test_the_lock_goes_with_the_process(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    image, proc = holder
    proc.kill()
    proc.wait()
    FlashLog.open(str(image)).close()  # a killed owner leaves nothing locked


def test_a_second_open_in_one_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    dev = FlashDevice.format(str(tmp_path / "f.img"), Geometry(8 * 4096, 4096))
    with pytest.raises(ImageBusyError):
        FlashDevice.open(str(tmp_path / "f.img"), readonly=True)
    dev.close()
    FlashDevice.open(str(tmp_path / "f.img")).close()


# --- 2./3. a refused create leaves nothing behind ----------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "name=/s&size=1048576",  # does not fit
        "name=/a/b",  # not one name under /
        "name=/" + "n" * 255,  # longer than a dirent holds
        "name=/a%00b",  # NUL
    ],
)
def test_a_refused_create_leaves_no_image(tmp_path: Path, query: str) -> None:
    url = f"flashlog://{tmp_path}/new3.img?{query}"
    one_line_error(run("create", url, "--pages", "1000"), USAGE)
    assert files_in(tmp_path) == []
    # so a retry that can succeed does
    proc = run("create", f"flashlog://{tmp_path}/new3.img?name=/s", "--pages", "1000")
    assert proc.returncode == 0, proc.stderr
    assert files_in(tmp_path) == ["new3.img", "new3.img.flash"]


async def test_an_image_formatted_for_a_failed_create_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails after formatting (here: injected) takes the new image with it."""

    def refuse(*_args: object) -> int:
        raise UsageError("injected failure after format")

    monkeypatch.setattr(FlashLog, "create_file", refuse)
    with pytest.raises(UsageError, match="injected"):
        await PluginHost().activate(f"flashlog://{tmp_path}/f.img", create=CreateRequest(16))
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("page_size", [4096, 1024, 512])
async def test_the_check_before_format_agrees_with_the_log(tmp_path: Path, page_size: int) -> None:
    """The largest file the log accepts is created; one page more is refused up front."""
    pages = capacity_chunks(65536, 16, 2, page_size) * 4096 // page_size
    host = PluginHost()
    url = f"flashlog://{tmp_path}/f.img?size={1 << 20}"
    with pytest.raises(UsageError, match="does not fit"):
        await host.activate(url, create=CreateRequest(pages + 1, page_size))
    assert files_in(tmp_path) == []
    area = await host.activate(url, create=CreateRequest(pages, page_size))
    assert area.pages == pages
    await area.deactivate()


def test_an_existing_image_is_not_touched_by_a_create_with_a_bad_name(tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    make_image(image)
    before = image.read_bytes()
    for name in ("/" + "n" * 255, "/x/y", "/a%00b", "/.."):
        url = f"flashlog://{image}?name={name}"
        one_line_error(run("create", url, "--pages", "4"), USAGE)
    assert image.read_bytes() == before
    log = FlashLog.open(str(image), readonly=True)
    try:
        assert log.report().files == {"swapfile": 16 * 4096}
    finally:
        log.close()


@pytest.mark.parametrize("name", ["/" + "n" * 255, "/" + "é" * 128, "/a\0b", "/", "/a/b", ".."])
def test_create_file_checks_the_name_before_writing(tmp_path: Path, name: str) -> None:
    log = FlashLog.format(str(tmp_path / "f.img"), Geometry(1 << 20, 65536))
    try:
        programmed = log.device.programmed_bytes
        with pytest.raises(FileNameError):
            log.create_file(name, 4096)
        assert log.device.programmed_bytes == programmed
        assert log.create_file("/" + "n" * 254, 4096) > 1  # the longest name still fits
    finally:
        log.close()


# --- 4. a missing image is one line -----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["flash", "inspect", "{d}/nonexist.img", "--erase-block", "64KiB"],
        ["flash", "gc", "{d}/nonexist.img", "--erase-block", "64KiB"],
        ["info", "flashlog://{d}/nonexist2.img?erase_block=65536"],
        ["info", "flashlog://{d}/nonexist2.img?size=1048576"],
    ],
)
def test_a_missing_image_with_a_geometry_is_one_line(tmp_path: Path, args: list[str]) -> None:
    proc = run(*(a.format(d=tmp_path) for a in args))
    one_line_error(proc, AREA, "no such flash image")


# --- 5./6. format never leaves a partial store and never overwrites ----------------------


def _format_on_tmpfs(tmp_path: Path, fs_size: str, image_size_: str, eb: str) -> str:
    """Run ``swapio flash format`` on a fresh tmpfs of ``fs_size`` in a private mount
    namespace; print its exit code, stderr and what the directory holds afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f"mount -t tmpfs -o size={fs_size} tmpfs {mnt} && "
        f"{sys.executable} -m swapio flash format {mnt}/f.img --size {image_size_} "
        f"--erase-block {eb} 2>{tmp_path}/err; echo rc=$?; ls -A {mnt}"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=True
    )
    return proc.stdout + (tmp_path / "err").read_text()


@pytest.mark.parametrize(
    ("fs_size", "image_size_", "eb"),
    [
        ("256k", "1MiB", "64KiB"),  # the image itself does not fit
        ("64k", "64KiB", "4KiB"),  # the image fits exactly, its sidecar does not
    ],
)
def test_format_on_a_full_filesystem_is_one_line_and_leaves_nothing(
    tmp_path: Path, fs_size: str, image_size_: str, eb: str
) -> None:
    """The free space is checked before anything is written (as the file backend does)."""
    out = _format_on_tmpfs(tmp_path, fs_size, image_size_, eb)
    head, _, err = out.partition("swapio: error: ")
    assert head.splitlines() == [f"rc={AREA}"], out  # and `ls -A` listed nothing
    assert "Traceback" not in out
    assert "bytes are free on that filesystem" in err
    assert "nothing was written" in err
    assert err.count("\n") == 1


def test_a_sidecar_that_does_not_fit_is_one_line(tmp_path: Path) -> None:
    """A sidecar-less image filling its file system: the first read-write mount cannot
    write the sidecar; one line, exit 1, and the image is left as it was."""
    log = FlashLog.format(str(tmp_path / "src.img"), Geometry(64 * 1024, 4096))
    log.close()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mnt} && cp {tmp_path}/src.img {mnt}/f.img && "
        f"{sys.executable} -m swapio flash gc {mnt}/f.img --erase-block 4KiB "
        f"2>{tmp_path}/err; echo rc=$?; ls -A {mnt}; cmp {tmp_path}/src.img {mnt}/f.img"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=True
    )
    assert proc.stdout.splitlines() == [f"rc={FAILURE}", "f.img"], proc.stdout
    err = (tmp_path / "err").read_text()
    assert err.startswith("swapio: error: ")
    assert "cannot write the sidecar: No space left on device" in err
    assert err.count("\n") == 1


def test_format_refuses_an_existing_sidecar(tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    side = Path(sidecar_path(str(image)))
    side.write_bytes(b"someone's chip state")
    one_line_error(run("flash", "format", str(image), "--size", "1MiB"), AREA, "sidecar")
    assert side.read_bytes() == b"someone's chip state"
    assert files_in(tmp_path) == ["f.img.flash"]


# --- 7. --json on every reporting verb ---------------------------------------------------


def test_format_and_gc_report_json(tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    proc = run("flash", "format", str(image), "--size", "1MiB", "--bad-block", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "image": str(image),
        "geometry": {"size": 1 << 20, "erase_block": 65536, "write_unit": 4},
        "blocks": 16,
        "cleanmarkers": True,
        "bad_blocks": [3],
    }
    log = FlashLog.open(str(image))
    ino = log.create_file("/swapfile", 64 * 4096)
    for round_ in range(3):
        for slot in range(64):
            log.write(ino, slot * 4096, bytes([round_ + 1]) * 4096)
    log.close()
    proc = run("flash", "gc", str(image), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"image", "collected_blocks", "free_blocks_before", "free_blocks_after"}
    assert doc["collected_blocks"] > 0
    assert doc["free_blocks_after"] > doc["free_blocks_before"]


# --- 8. no leaked files -------------------------------------------------------------------


def test_no_resource_warning_under_dev_mode(tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    make_image(image)
    for args in (["flash", "inspect", str(image)], ["info", f"flashlog://{image}"]):
        proc = run(*args, dev=True)
        assert proc.returncode == 0, proc.stderr
        assert "ResourceWarning" not in proc.stderr, proc.stderr


# --- 9. block devices ----------------------------------------------------------------------


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real loop device over a copy of a swapio image (no sidecar: a foreign device)."""
    image = tmp_path / "f.img"
    make_image(image)
    backing = tmp_path / "backing.img"
    shutil.copyfile(image, backing)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield image, dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=True)


def test_a_block_device_is_sized_by_seeking_to_its_end(loop_device: tuple[Path, str]) -> None:
    _image, dev = loop_device
    assert os.stat(dev).st_size == 0  # what sizing by st_size saw
    assert image_size(dev) == 1 << 20
    proc = run("flash", "inspect", dev, "--erase-block", "64KiB", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["geometry"]["size"] == 1 << 20
    assert doc["files"] == {"swapfile": 16 * 4096}
    assert not os.path.exists(sidecar_path(dev))  # read-only: no sidecar in /dev


# --- 10. a bad geometry is a usage error ----------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--erase-block", "3000", "erase block 3000"),
        ("--size", "0", "flash size 0"),
        ("--write-unit", "3", "write unit 3"),
        ("--bad-block", "99", "bad block 99"),
    ],
)
def test_an_impossible_geometry_is_a_usage_error(
    tmp_path: Path, option: str, value: str, needle: str
) -> None:
    args = ["flash", "format", str(tmp_path / "f.img"), "--size", "1MiB", option, value]
    one_line_error(run(*args), USAGE, needle)
    assert files_in(tmp_path) == []
