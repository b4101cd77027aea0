"""Interop with real JFFS2 tools, both ways (mtd-utils ``mkfs.jffs2``/``jffs2dump``/``sumtool``
and PyPI ``jefferson``).  These tests fail, not skip, when a tool is missing."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from swapio_flashlog.device import Geometry
from swapio_flashlog.log import FlashLog

from swapio import CreateRequest, PluginHost
from swapio.testing import page_pattern

JEFFERSON = str(Path(sys.executable).with_name("jefferson"))


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def jffs2dump(image: Path) -> str:
    return run("jffs2dump", "-c", str(image))


def wrong_lines(dump: str) -> list[str]:
    return [line for line in dump.splitlines() if line.startswith("Wrong")]


def jefferson(image: Path, out: Path) -> None:
    run(JEFFERSON, "-f", "-d", str(out), str(image))


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    rng = random.Random(7)
    (root / "sub").mkdir()
    (root / "random.bin").write_bytes(rng.randbytes(50 * 4096))
    words = [b"swap", b"flash", b"node", b"erase", b"block", b"version", b"\n"]
    text = b" ".join(rng.choice(words) for _ in range(40000))
    (root / "sub" / "text.txt").write_bytes(text[: len(text) // 4096 * 4096])
    (root / "sub" / "small.bin").write_bytes(rng.randbytes(9 * 512))
    (root / "empty").write_bytes(b"")
    return root


def mkfs(source: Path, image: Path, erase_block: int, *extra: str) -> None:
    run(
        "mkfs.jffs2",
        "-f",
        "-l",
        "-r",
        str(source),
        "-o",
        str(image),
        "-e",
        str(erase_block),
        f"--pad={2 * 1024 * 1024}",
        *extra,
    )


MKFS_CASES = [
    pytest.param(65536, (), id="64KiB-cleanmarkers-zlib"),
    pytest.param(65536, ("-n",), id="64KiB-no-cleanmarkers"),
    pytest.param(131072, (), id="128KiB-cleanmarkers"),
    pytest.param(131072, ("-n",), id="128KiB-no-cleanmarkers"),
    pytest.param(65536, ("-m", "none"), id="64KiB-uncompressed"),
    pytest.param(131072, ("-x", "zlib"), id="128KiB-rtime"),
]


@pytest.mark.parametrize(("erase_block", "extra"), MKFS_CASES)
async def test_mkfs_image_files_read_back_through_swap_in(
    source_tree: Path, tmp_path: Path, erase_block: int, extra: tuple[str, ...]
) -> None:
    image = tmp_path / "mkfs.img"
    mkfs(source_tree, image, erase_block, *extra)
    dump = jffs2dump(image)
    split = [int(m) for m in re.findall(r"dsize\s+(\d+)", dump) if 0 < int(m) < 4096]
    assert split, "expected mkfs to split some data nodes at erase-block boundaries"
    host = PluginHost()
    for name, page_size in (
        ("/random.bin", 4096),
        ("/sub/text.txt", 4096),
        ("/sub/small.bin", 512),
    ):
        expected = (source_tree / name.lstrip("/")).read_bytes()
        url = f"flashlog://{image}?name={name}&erase_block={erase_block}&page_size={page_size}"
        area = await host.activate(url)
        try:
            assert area.pages * page_size == len(expected)
            got = bytearray()
            slot = 0
            rng = random.Random(erase_block)
            while slot < area.pages:  # requests of assorted lengths cross node boundaries
                count = min(rng.randrange(1, 9), area.pages - slot)
                got += await area.read(slot, count)
                slot += count
            assert bytes(got) == expected
        finally:
            await area.deactivate()


async def test_writes_into_a_mkfs_image_are_seen_by_jefferson(
    source_tree: Path, tmp_path: Path
) -> None:
    image = tmp_path / "mkfs.img"
    mkfs(source_tree, image, 65536)
    host = PluginHost()
    area = await host.activate(f"flashlog://{image}?name=/random.bin&erase_block=65536")
    for slot in (0, 7, 49):
        await area.write(slot, page_pattern(slot, 3, 4096))
    content = bytes(await area.read(0, area.pages))
    await area.deactivate()
    assert wrong_lines(jffs2dump(image)) == []
    jefferson(image, tmp_path / "out")
    assert (tmp_path / "out" / "random.bin").read_bytes() == content
    text = (source_tree / "sub" / "text.txt").read_bytes()
    assert (tmp_path / "out" / "sub" / "text.txt").read_bytes() == text


async def test_swapio_image_passes_jffs2dump_and_jefferson_extracts_it(tmp_path: Path) -> None:
    image = tmp_path / "swap.img"
    host = PluginHost()
    area = await host.activate(
        f"flashlog://{image}?name=/swapfile&size={1024 * 1024}", create=CreateRequest(pages=96)
    )
    rng = random.Random(3)
    for generation in range(6):  # enough overwrites to force garbage collection
        for slot in rng.sample(range(96), 80):
            await area.write(slot, page_pattern(slot, generation, 4096))
    await area.write(10, bytes(4096))  # a zero page: a JFFS2_COMPR_ZERO node
    await area.discard(20, 3)
    content = bytes(await area.read(0, 96))
    assert area.private.log.gc_steps > 0
    await area.deactivate()
    dump = jffs2dump(image)
    assert wrong_lines(dump) == []
    assert "Inode Sum" in dump  # erase-block summaries are there and jffs2dump parses them
    assert "name swapfile" in dump
    jefferson(image, tmp_path / "out")
    assert (tmp_path / "out" / "swapfile").read_bytes() == content


async def test_sumtool_summaries_are_used_at_mount(source_tree: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.img"
    mkfs(source_tree, plain, 65536, "--pad=0")
    summed = tmp_path / "sum.img"
    run("sumtool", "-i", str(plain), "-o", str(summed), "-e", "65536", "-l", "--pad")
    size = os.path.getsize(summed)
    assert size % 65536 == 0
    log = FlashLog.open(str(summed), Geometry(size, 65536), readonly=True)
    try:
        assert sum(b.summarized for b in log.blocks) >= 3
        ino = log.lookup("/random.bin")
        out = bytearray(50 * 4096)
        log.read(ino, 0, memoryview(out))
        assert bytes(out) == (source_tree / "random.bin").read_bytes()
    finally:
        log.close()


def test_inspect_of_a_mkfs_image_names_nested_files(source_tree: Path, tmp_path: Path) -> None:
    image = tmp_path / "mkfs.img"
    mkfs(source_tree, image, 131072)
    log = FlashLog.open(str(image), Geometry(os.path.getsize(image), 131072), readonly=True)
    try:
        files = log.report().files
    finally:
        log.close()
    assert files["random.bin"] == 50 * 4096
    assert files["sub/text.txt"] == (source_tree / "sub" / "text.txt").stat().st_size
    assert files["empty"] == 0
    assert not os.path.exists(str(image) + ".flash")  # a read-only mount writes nothing
