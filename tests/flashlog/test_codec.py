"""The sans-I/O JFFS2 node codec: layouts, CRC coverage, clean errors on any input."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_flashlog._compress import decompress, rtime_compress, rtime_decompress
from swapio_flashlog._nodes import (
    NODE_ACCURATE,
    Cleanmarker,
    Compression,
    Dirent,
    NodeType,
    Padding,
    RawInode,
    SumDirent,
    SumInode,
    Summary,
    crc32,
    decode,
    decode_header,
    decode_inode,
    decode_marker,
    encode,
    encode_summary,
    inode_header,
    pad,
    verify,
)
from swapio_flashlog._scan import BadNode, BlockScanner, Dirt, Empty, NodeFound, scan_block
from swapio_flashlog.errors import CompressionError, NodeCRCError, NodeFormatError


def reference_crc32(data: bytes) -> int:
    """Bitwise crc32_le(0, data) as lib/crc32.c computes it (no pre/post inversion)."""
    val = 0
    for byte in data:
        val ^= byte
        for _ in range(8):
            val = (val >> 1) ^ (0xEDB88320 if val & 1 else 0)
    return val


def inode(**kw: object) -> RawInode:
    base: dict[str, object] = {
        "ino": 2,
        "version": 7,
        "mode": 0o100600,
        "offset": 4096,
        "dsize": 5,
        "isize": 8192,
        "data": b"hello",
    }
    base.update(kw)
    return RawInode(**base)  # type: ignore[arg-type]


# --- layouts and CRCs -------------------------------------------------------------------


def test_cleanmarker_is_the_documented_twelve_bytes() -> None:
    assert encode(Cleanmarker()) == bytes.fromhex("85190320 0c000000 b1b01ee4")


@given(st.binary(max_size=300))
def test_crc32_is_linux_crc32_le_with_seed_zero(data: bytes) -> None:
    assert crc32(data) == reference_crc32(data)


def test_inode_layout_matches_struct_jffs2_raw_inode() -> None:
    raw = encode(inode())
    assert len(raw) == 68 + 5
    magic, ntype, totlen, hdr_crc = struct.unpack_from("<HHII", raw)
    assert (magic, ntype, totlen) == (0x1985, 0xE002, 73)
    assert hdr_crc == reference_crc32(raw[:8])
    assert struct.unpack_from("<III", raw, 12) == (2, 7, 0o100600)
    assert struct.unpack_from("<III", raw, 44) == (4096, 5, 5)  # offset, csize, dsize
    data_crc, node_crc = struct.unpack_from("<II", raw, 60)
    assert (data_crc, node_crc) == (reference_crc32(b"hello"), reference_crc32(raw[:60]))
    assert raw[68:] == b"hello"


def test_dirent_layout_matches_struct_jffs2_raw_dirent() -> None:
    raw = encode(Dirent(pino=1, version=3, ino=2, name=b"swapfile"))
    assert len(raw) == 48
    assert struct.unpack_from("<HHI", raw) == (0x1985, 0xE001, 48)
    assert struct.unpack_from("<IIIIBB", raw, 12) == (1, 3, 2, 0, 8, 8)
    assert struct.unpack_from("<II", raw, 32) == (
        reference_crc32(raw[:32]),
        reference_crc32(b"swapfile"),
    )


def test_summary_ends_with_the_marker_and_covers_entries_with_sum_crc() -> None:
    entries = (SumInode(2, 9, 12, 4164), SumDirent(48, 4176, 1, 1, 2, b"swapfile"))
    raw = encode_summary(Summary(entries, totlen=256, offset=65536 - 256))
    assert len(raw) == 256
    assert decode_marker(raw) == 65536 - 256
    (sum_num, cln, padded, sum_crc, node_crc) = struct.unpack_from("<IIIII", raw, 12)
    assert (sum_num, cln, padded) == (2, 12, 0)
    assert node_crc == reference_crc32(raw[:24])
    assert sum_crc == reference_crc32(raw[32:])
    assert struct.unpack_from("<HIIII", raw, 32) == (0xE002, 2, 9, 12, 4164)


def test_header_crc_is_computed_with_accurate_forced_on() -> None:
    raw = bytearray(encode(inode()))
    raw[3] &= ~(NODE_ACCURATE >> 8)  # clear ACCURATE in place, as NOR obsoletion does
    hdr = decode_header(raw)
    assert not hdr.accurate
    assert hdr.base_type == NodeType.INODE


@pytest.mark.parametrize(
    "node",
    [
        inode(),
        inode(data=b"", dsize=1 << 20, compr=Compression.ZERO),
        Dirent(pino=1, version=0, ino=5, name=b"a" * 254, type=4),
        Cleanmarker(),
        Padding(64),
        Summary((SumInode(2, 1, 12, 80),), totlen=128, offset=0, cln_mkr=0, padded=8),
    ],
    ids=["inode", "hole", "dirent", "cleanmarker", "padding", "summary"],
)
def test_every_node_kind_round_trips(node: object) -> None:
    raw = encode(node)  # type: ignore[arg-type]
    assert decode(raw) == node


@given(
    ino=st.integers(1, 2**32 - 1),
    version=st.integers(0, 2**32 - 1),
    offset=st.integers(0, 2**32 - 1),
    data=st.binary(max_size=512),
    compr=st.sampled_from([0, 2, 6]),
)
def test_inode_round_trips_for_any_fields(
    ino: int, version: int, offset: int, data: bytes, compr: int
) -> None:
    node = inode(ino=ino, version=version, offset=offset, data=data, dsize=len(data), compr=compr)
    assert decode(encode(node)) == node


@given(name=st.binary(min_size=1, max_size=254), pino=st.integers(0, 2**32 - 1))
def test_dirent_round_trips_for_any_name(name: bytes, pino: int) -> None:
    node = Dirent(pino=pino, version=1, ino=3, name=name)
    assert decode(encode(node)) == node


def test_every_single_bit_flip_in_an_inode_is_detected() -> None:
    raw = encode(inode(data=b"0123456789abcdef", dsize=16))
    for bit in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        if bit // 8 == 3 and bit % 8 == 5:
            continue  # the ACCURATE bit: a valid obsolete node, checked above
        with pytest.raises(NodeFormatError):
            decode(bytes(bad))


def test_node_crc_does_not_cover_data_crc_but_data_crc_catches_it() -> None:
    raw = bytearray(encode(inode()))
    raw[60] ^= 1
    with pytest.raises(NodeCRCError, match="data_crc"):
        decode(bytes(raw))
    assert decode_inode(bytes(raw), check_data=False).version == 7


def test_every_truncation_is_a_clean_error() -> None:
    raw = encode(inode())
    for cut in range(len(raw)):
        with pytest.raises(NodeFormatError):
            decode(raw[:cut])


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_decode_of_random_bytes_raises_only_node_format_errors(data: bytes) -> None:
    with contextlib.suppress(NodeFormatError):
        decode(data)


@settings(max_examples=300)
@given(st.binary(min_size=12, max_size=200), st.integers(0xE000, 0xE00F))
def test_random_body_behind_a_valid_header_is_a_clean_error(body: bytes, ntype: int) -> None:
    first = struct.pack("<HHI", 0x1985, ntype, len(body) + 12)
    raw = first + struct.pack("<I", crc32(first)) + body
    with contextlib.suppress(NodeFormatError):
        decode(raw)


def test_wrong_magic_is_named_in_the_error() -> None:
    raw = bytearray(encode(inode()))
    raw[0:2] = b"\x19\x85"
    with pytest.raises(NodeFormatError, match="byte-swapped"):
        decode(bytes(raw))


# --- compression --------------------------------------------------------------------------


@given(st.binary(max_size=600))
def test_rtime_round_trips(data: bytes) -> None:
    assert rtime_decompress(rtime_compress(data), len(data)) == data


def test_rtime_compresses_runs() -> None:
    data = b"abcabcabcabc" * 40
    assert len(rtime_compress(data)) < len(data) // 4


def test_zlib_and_zero_and_none_decompress() -> None:
    data = bytes(range(256)) * 8
    assert decompress(Compression.ZLIB, zlib.compress(data), len(data)) == data
    assert decompress(Compression.ZERO, b"", 4096) == bytes(4096)
    assert decompress(Compression.NONE, data, len(data)) == data


@pytest.mark.parametrize("compr", [Compression.RUBINMIPS, Compression.DYNRUBIN, 99])
def test_unsupported_compression_is_named(compr: int) -> None:
    with pytest.raises(CompressionError, match="not supported"):
        decompress(compr, b"xx", 2)


def test_zlib_bomb_is_bounded_by_dsize() -> None:
    with pytest.raises(CompressionError, match="dsize"):
        decompress(Compression.ZLIB, zlib.compress(bytes(1 << 20)), 4096)


@settings(max_examples=300)
@given(st.binary(max_size=100), st.integers(0, 5000), st.sampled_from([0, 2, 6, 7]))
def test_decompress_of_random_bytes_raises_only_compression_errors(
    data: bytes, dsize: int, compr: int
) -> None:
    try:
        out = decompress(compr, data, dsize)
    except CompressionError:
        return
    assert len(out) == dsize


# --- scanning ---------------------------------------------------------------------------


def sample_block(size: int = 1024) -> bytes:
    parts = [
        encode(Cleanmarker()),
        encode(Dirent(pino=1, version=1, ino=2, name=b"swapfile")),
        encode(inode(data=b"abc", dsize=3)),
    ]
    body = b"".join(p + b"\xff" * (pad(len(p)) - len(p)) for p in parts)
    torn = encode(inode(version=8, data=b"x" * 40, dsize=40))[:80]
    junk = b"\x00\x00\x00\x00\x84\x19\x02\xe0"
    block = body + junk + encode(inode(version=9)) + b"\xff" * 3 + torn
    return block + b"\xff" * (size - len(block))


def test_scan_classifies_nodes_dirt_and_empty_space() -> None:
    events = scan_block(sample_block())
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["NodeFound", "NodeFound", "NodeFound"]
    assert isinstance(events[3], Dirt)
    assert isinstance(events[4], NodeFound)
    assert isinstance(events[-1], Empty)
    bad = [e for e in events if isinstance(e, BadNode)]
    assert len(bad) == 1
    assert bad[0].inode is not None
    assert bad[0].inode.version == 8


def test_scan_events_tile_the_block() -> None:
    events = scan_block(sample_block(), base=0x10000)
    pos = 0x10000
    for event in events:
        assert event.offset == pos
        pos += event.length
    assert pos == 0x10000 + 1024


def test_scan_result_is_the_same_for_a_split_at_every_boundary() -> None:
    block = sample_block(512)
    whole = scan_block(block)
    for cut in range(len(block) + 1):
        scanner = BlockScanner(len(block))
        scanner.feed(block[:cut])
        got = scanner.events()
        scanner.feed(block[cut:])
        assert got + scanner.end() == whole, cut


def test_scan_result_is_the_same_byte_by_byte() -> None:
    block = sample_block(512)
    scanner = BlockScanner(len(block))
    got = []
    for i in range(len(block)):
        scanner.feed(block[i : i + 1])
        got += scanner.events()
    assert got + scanner.end() == scan_block(block)


def test_node_running_past_the_block_end_is_dirt() -> None:
    raw = encode(inode(data=b"z" * 100, dsize=100))
    events = scan_block(raw[:64] + b"\xff" * 0)
    assert all(not isinstance(e, NodeFound) for e in events)
    assert any("past the erase block end" in e.reason for e in events if isinstance(e, Dirt))


def test_cleanmarker_away_from_block_start_is_not_accepted() -> None:
    block = encode(inode()) + b"\xff" * 3 + encode(Cleanmarker())
    events = scan_block(block + b"\xff" * 32)
    assert any(isinstance(e, BadNode) and "cleanmarker" in e.reason for e in events)


@settings(max_examples=300)
@given(st.binary(max_size=400).map(lambda b: b + b"\xff" * (-len(b) % 4)))
def test_scan_of_random_bytes_never_raises_and_tiles(data: bytes) -> None:
    pos = 0
    for event in scan_block(data):
        assert event.offset == pos
        pos += event.length
    assert pos == len(data)


# --- the append path's encoder and the GC's check ------------------------------------------


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 2**32 - 1), st.integers(1, 2**31))
def test_inode_header_equals_the_full_encoder(data: bytes, version: int, foff: int) -> None:
    node = RawInode(7, version, 0o100600, foff, len(data), 1 << 20, data, mtime=5, ctime=5, atime=5)
    head = inode_header(
        7, version, 0o100600, 1 << 20, foff, len(data), len(data), 0, crc32(data), 5
    )
    assert head + data == encode(node)


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=64), st.integers(0, 131), st.integers(0, 7))
def test_verify_accepts_exactly_what_decode_accepts(data: bytes, at: int, bit: int) -> None:
    raw = bytearray(encode(RawInode(3, 9, 0o100600, 0, len(data), 4096, data)))
    if at < len(raw):
        raw[at] ^= 1 << bit
    try:
        decode(bytes(raw))
    except NodeFormatError:
        with pytest.raises(NodeFormatError):
            verify(bytes(raw))
        return
    verify(bytes(raw))
