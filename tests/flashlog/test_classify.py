"""How a mount classifies a scanned erase block (the log's power-loss rules, sans-I/O)."""

from __future__ import annotations

from swapio_flashlog._classify import Verdict, classify_block
from swapio_flashlog._nodes import Cleanmarker, RawInode, SumInode, Summary, encode, pad
from swapio_flashlog._scan import scan_block

EB = 4096


def inode(version: int) -> bytes:
    raw = encode(RawInode(2, version, 0o100600, 0, 100, 4096, b"d" * 100))
    return raw + b"\xff" * (pad(len(raw)) - len(raw))


def block(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return body + b"\xff" * (EB - len(body))


def verdict(data: bytes) -> Verdict:
    return classify_block(scan_block(data, 3 * EB), 3 * EB, EB).verdict


CM = encode(Cleanmarker())


def test_cleanmarker_only_is_free() -> None:
    assert verdict(block(CM)) is Verdict.FREE


def test_nodes_then_erased_space_is_full() -> None:
    result = classify_block(scan_block(block(CM, inode(1), inode(2)), 0), 0, EB)
    assert result.verdict is Verdict.FULL
    assert len(result.found) == 3
    assert result.end == 12 + 2 * len(inode(1))


def test_a_torn_last_node_is_a_torn_tail_naming_its_inode() -> None:
    torn = inode(3)[:90]
    result = classify_block(scan_block(block(CM, inode(1), torn), 0), 0, EB)
    assert result.verdict is Verdict.TORN
    assert result.torn_inodes == ((2, 3),)
    assert len(result.found) == 2


def test_damage_followed_by_a_valid_node_is_corruption() -> None:
    damaged = bytearray(inode(1))
    damaged[80] ^= 0x01
    result = classify_block(scan_block(block(CM, bytes(damaged), inode(2)), 0), 0, EB)
    assert result.verdict is Verdict.CORRUPT
    assert "corrupt data at 0x0000000c" in result.problem


def test_a_block_not_starting_with_a_node_is_garbage() -> None:
    half_erased = b"\xff" * 64 + block(CM, inode(1), inode(2))[64:]
    assert verdict(half_erased) is Verdict.GARBAGE
    assert verdict(b"\x00" * EB) is Verdict.GARBAGE


def test_a_node_crossing_the_block_end_means_wrong_geometry() -> None:
    big = encode(RawInode(2, 1, 0o100600, 0, 4050, 4096, b"x" * 4050))
    data = (CM + big)[:EB]
    result = classify_block(scan_block(data, 0), 0, EB)
    assert result.verdict is Verdict.CORRUPT
    assert "wrong erase-block size" in result.problem


def test_a_block_with_a_summary_is_full_even_with_free_space_before_it() -> None:
    node = inode(1)
    summary_at = EB - 64
    summary = encode(Summary((SumInode(2, 1, 12, 168),), totlen=64, offset=summary_at))
    data = CM + node + b"\xff" * (summary_at - 12 - len(node)) + summary
    result = classify_block(scan_block(data, 0), 0, EB)
    assert result.verdict is Verdict.FULL
    assert result.summarized
