"""The write batch's column-wise node headers and the one-program-per-block append path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from swapio_flashlog._columns import Batch
from swapio_flashlog._nodes import (
    INODE_SIZE,
    Compression,
    RawInode,
    decode_marker,
    decode_summary,
    encode_inode,
)
from swapio_flashlog.device import Geometry
from swapio_flashlog.log import FlashLog

PAGE = 4096
INODE = (7, 100, 0o100600, 1 << 20, 1_700_000_000)


def page(tag: int, size: int = PAGE) -> bytes:
    return hashlib.blake2b(str(tag).encode(), digest_size=64).digest() * (size // 64)


def expected(i: int, offset: int, data: bytes) -> bytes:
    ino, version, mode, isize, now = INODE
    zero = data == bytes(len(data))
    node = RawInode(
        ino, version + i, mode, offset, len(data), isize,
        data=b"" if zero else data,
        compr=Compression.ZERO if zero else Compression.NONE,
        atime=now, mtime=now, ctime=now,
    )  # fmt: skip
    return encode_inode(node)[:INODE_SIZE]


def headers(offsets: list[int], pages: list[bytes], i: int, k: int) -> list[bytes]:
    batch = Batch(INODE, offsets, pages, [len(p) for p in pages], 4)
    return list(batch.headers(memoryview(bytearray(65536)), i, k))


def test_uniform_batch_headers_equal_the_codec_node_by_node() -> None:
    pages = [page(i) for i in range(20)]
    offsets = [i * PAGE for i in range(20)]
    got = headers(offsets, pages, 3, 15)
    assert got == [expected(3 + j, offsets[3 + j], pages[3 + j]) for j in range(15)]


def test_zero_pages_and_mixed_sizes_equal_the_codec_node_by_node() -> None:
    pages = [page(1), bytes(PAGE), page(2, 512), bytes(1024), page(3, 2048), page(4)]
    offsets = [0, 4096, 8192, 12288, 16384, 20480]
    got = headers(offsets, pages, 0, len(pages))
    assert got == [expected(j, offsets[j], pages[j]) for j in range(len(pages))]


def test_a_page_whose_crc_matches_a_zero_page_is_not_taken_for_one() -> None:
    # every node is checked byte by byte, not by CRC: a page of ones is data
    pages = [page(1), b"\x01" * PAGE]
    got = headers([0, PAGE], pages, 0, 2)
    assert got[1] == expected(1, PAGE, pages[1])


def test_a_full_block_is_one_program_with_its_summary(tmp_path: Path) -> None:
    log = FlashLog.format(str(tmp_path / "f.img"), Geometry(16 * 65536, 65536))
    ino = log.create_file("/swapfile", 128 * PAGE)
    ops = log.device.ops
    first = log.heads["user"]
    data = os.urandom(64 * PAGE)
    log.write(ino, 0, data)
    # 64 nodes of 4164 B: 15 fill a 64 KiB block with its summary, so 5 blocks are used,
    # 4 of them filled and closed: one program each (nodes + summary), none for summaries
    assert log.device.ops - ops == 5
    assert first.state.name == "FULL"
    assert first.summarized
    block = log.device.read(first.start, 65536)
    at = decode_marker(block)
    assert at is not None
    summary = decode_summary(block, at)
    assert len(summary.entries) == len(first.nodes)
    out = bytearray(64 * PAGE)
    log.read(ino, 0, memoryview(out))
    assert bytes(out) == data
    log.close()
