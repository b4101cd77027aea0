"""The bitmap_super_t codec and the bit layout (kernel-facts.md section 2)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_mdraid import (
    BITMAP_MAGIC,
    Bitmap,
    BitmapFormatError,
    BitmapParameterError,
    BitmapState,
    BitmapSuperblock,
    UnsupportedBitmapVersionError,
    bitmap_bits,
)
from swapio_mdraid._format import format_uuid, parse_uuid

from swapio.errors import SwapioError

LAYOUT = struct.Struct("<II16sQQQIIIIII64s120s")


def raw_superblock(**fields: object) -> bytearray:
    values: dict[str, object] = {
        "magic": BITMAP_MAGIC,
        "version": 4,
        "uuid": bytes(range(16)),
        "events": 11,
        "events_cleared": 7,
        "sync_size": 2048,
        "state": 0,
        "chunksize": 65536,
        "daemon_sleep": 5,
        "write_behind": 0,
        "sectors_reserved": 0,
        "nodes": 0,
        "cluster_name": b"",
    }
    values.update(fields)
    return bytearray(LAYOUT.pack(*values.values(), bytes(120)))


def test_superblock_is_256_little_endian_bytes_at_kernel_offsets() -> None:
    sb = BitmapSuperblock(
        uuid=bytes(range(16)),
        events=0x0102030405060708,
        events_cleared=3,
        sync_size=4096,
        state=BitmapState.STALE,
        chunksize=1 << 20,
        daemon_sleep=7,
        write_behind=256,
        sectors_reserved=9,
    )
    raw = sb.encode()
    assert len(raw) == 256
    assert raw[0:4] == b"bitm"
    assert int.from_bytes(raw[4:8], "little") == 4
    assert raw[8:24] == bytes(range(16))
    assert int.from_bytes(raw[24:32], "little") == 0x0102030405060708
    assert int.from_bytes(raw[32:40], "little") == 3
    assert int.from_bytes(raw[40:48], "little") == 4096
    assert int.from_bytes(raw[48:52], "little") == 2
    assert int.from_bytes(raw[52:56], "little") == 1 << 20
    assert int.from_bytes(raw[56:60], "little") == 7
    assert int.from_bytes(raw[60:64], "little") == 256
    assert int.from_bytes(raw[64:68], "little") == 9
    assert raw[136:256] == bytes(120)


def test_decode_reads_every_field() -> None:
    raw = raw_superblock(sectors_reserved=77, nodes=0, cluster_name=b"alpha", write_behind=9)
    sb = BitmapSuperblock.decode(raw)
    assert sb.uuid == bytes(range(16))
    assert (sb.events, sb.events_cleared, sb.sync_size) == (11, 7, 2048)
    assert (sb.chunksize, sb.daemon_sleep, sb.write_behind) == (65536, 5, 9)
    assert (sb.sectors_reserved, sb.nodes, sb.cluster_name) == (77, 0, b"alpha")


def test_version_3_is_read_as_little_endian() -> None:
    sb = BitmapSuperblock.decode(raw_superblock(version=3))
    assert sb.version == 3
    assert sb.chunks == bitmap_bits(2048, 65536)


@pytest.mark.parametrize("version", [0, 1, 2, 6, 0xFFFFFFFF])
def test_unknown_versions_are_refused(version: int) -> None:
    with pytest.raises(UnsupportedBitmapVersionError, match=f"version {version}; expected 3 or 4"):
        BitmapSuperblock.decode(raw_superblock(version=version))


def test_clustered_version_5_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedBitmapVersionError, match="version 5 .md-cluster."):
        BitmapSuperblock.decode(raw_superblock(version=5))


def test_bad_magic_says_what_was_found() -> None:
    with pytest.raises(BitmapFormatError, match="bad bitmap magic 0x00000000, expected 0x6d746962"):
        BitmapSuperblock.decode(raw_superblock(magic=0))


def test_big_endian_version_3_is_recognised_and_refused() -> None:
    with pytest.raises(UnsupportedBitmapVersionError, match="big-endian"):
        BitmapSuperblock.decode(raw_superblock(magic=0x6269746D))


def test_truncated_superblock() -> None:
    with pytest.raises(BitmapFormatError, match="needs 256 bytes, found 100"):
        BitmapSuperblock.decode(bytes(raw_superblock())[:100])


@pytest.mark.parametrize(
    ("chunksize", "message"),
    [(256, "below the minimum of 512"), (3 * 1024, "not a power of two"), (0, "below")],
)
def test_bad_chunk_sizes_are_refused(chunksize: int, message: str) -> None:
    with pytest.raises(BitmapFormatError, match=message):
        BitmapSuperblock.decode(raw_superblock(chunksize=chunksize))


def test_write_behind_above_counter_max_is_refused() -> None:
    with pytest.raises(
        BitmapFormatError, match=r"write-behind limit 16384 out of range \(0 - 16383\)"
    ):
        BitmapSuperblock.decode(raw_superblock(write_behind=16384))


def test_zero_daemon_sleep_is_refused() -> None:
    with pytest.raises(BitmapFormatError, match="daemon sleep period 0 s"):
        BitmapSuperblock.decode(raw_superblock(daemon_sleep=0))


def test_chunk_count_is_mdadm_bitmap_bits() -> None:
    # (sync_size * 512 + chunksize - 1) / chunksize, sync_size in sectors
    assert bitmap_bits(2048, 65536) == 16
    assert bitmap_bits(2049, 65536) == 17
    assert bitmap_bits(1, 4096) == 1
    assert bitmap_bits(0, 4096) == 0


def test_bits_are_lsb_first_after_the_superblock() -> None:
    bitmap = Bitmap(BitmapSuperblock(sync_size=64, chunksize=512))  # 64 chunks
    bitmap.set(0)
    bitmap.set(9)
    bitmap.set(63)
    image = bitmap.encode()
    assert image[256] == 0b0000_0001
    assert image[257] == 0b0000_0010
    assert image[263] == 0b1000_0000
    assert list(bitmap.dirty_chunks()) == [0, 9, 63]


def test_decoding_a_crafted_image_finds_set_bit_positions() -> None:
    image = bytes(raw_superblock(sync_size=40, chunksize=512)) + bytes([0x81, 0, 0x10, 0, 0x01])
    bitmap = Bitmap.decode(image)
    assert bitmap.chunks == 40
    assert list(bitmap.dirty_chunks()) == [0, 7, 20, 32]
    assert bitmap.count_dirty() == 4


def test_bits_beyond_the_last_chunk_are_not_counted() -> None:
    image = bytes(raw_superblock(sync_size=3, chunksize=512)) + bytes([0xFF])
    bitmap = Bitmap.decode(image)
    assert bitmap.count_dirty() == 3
    assert list(bitmap.dirty_chunks()) == [0, 1, 2]
    assert bitmap.encode()[256] == 0xFF  # kept as read


def test_truncated_bits_are_refused() -> None:
    image = bytes(raw_superblock(sync_size=2048 * 64, chunksize=512)) + bytes(10)
    with pytest.raises(BitmapFormatError, match="need 16384 bytes of bits .* found 10"):
        Bitmap.decode(image)


def test_create_sets_every_bit_like_mdadm() -> None:
    bitmap = Bitmap.create(sync_size_bytes=10 * 4096, chunk_size=4096)
    assert bitmap.count_dirty() == 10
    assert bitmap.superblock.version == 4
    assert bitmap.superblock.events == 0


def test_create_clean_sets_none() -> None:
    bitmap = Bitmap.create(sync_size_bytes=10 * 4096, chunk_size=4096, all_dirty=False)
    assert bitmap.count_dirty() == 0


@pytest.mark.parametrize(
    ("size", "chunk", "message"),
    [
        (4096, 1000, "not a power of two"),
        (4096, 256, "below the minimum"),
        (1000, 4096, "not a positive multiple of 512"),
        (0, 4096, "not a positive multiple"),
    ],
)
def test_create_refuses_bad_parameters(size: int, chunk: int, message: str) -> None:
    with pytest.raises(BitmapParameterError, match=message):
        Bitmap.create(sync_size_bytes=size, chunk_size=chunk)


def test_chunks_for_range_covers_partial_chunks() -> None:
    bitmap = Bitmap.create(sync_size_bytes=1 << 20, chunk_size=65536)
    assert bitmap.chunks_for_range(0, 1) == range(1)
    assert bitmap.chunks_for_range(65535, 2) == range(2)
    assert bitmap.chunks_for_range(65536 * 3, 65536 * 2) == range(3, 5)
    with pytest.raises(BitmapParameterError, match="not inside the sync range"):
        bitmap.chunks_for_range((1 << 20) - 1, 2)


def test_uuid_text_round_trip() -> None:
    raw = bytes(range(16))
    assert format_uuid(raw) == "00010203:04050607:08090a0b:0c0d0e0f"
    assert parse_uuid("00010203:04050607:08090a0b:0c0d0e0f") == raw
    assert parse_uuid("00010203-0405-0607-0809-0a0b0c0d0e0f") == raw
    with pytest.raises(BitmapParameterError, match="not 32 hex digits"):
        parse_uuid("xyz")


def test_page_split_of_the_image() -> None:
    bitmap = Bitmap.create(sync_size_bytes=512 * 8 * 600, chunk_size=512)  # 4800 chunks
    image = bitmap.encode()
    pages = [bitmap.page(p, 512) for p in range(bitmap.image_pages(512))]
    assert b"".join(pages)[: len(image)] == image
    assert all(len(p) == 512 for p in pages)


@given(st.binary(min_size=0, max_size=700))
@settings(max_examples=400)
def test_fuzz_decode_raises_only_clean_errors(data: bytes) -> None:
    try:
        bitmap = Bitmap.decode(data)
    except SwapioError:
        return
    assert bitmap.encode()[:4] == b"bitm"


@given(
    st.integers(min_value=3, max_value=5),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
)
@settings(max_examples=300)
def test_fuzz_superblock_fields(
    version: int, events: int, state: int, chunksize: int, write_behind: int
) -> None:
    raw = raw_superblock(
        version=version,
        events=events,
        state=state,
        chunksize=chunksize,
        write_behind=write_behind,
        sync_size=16,
    )
    try:
        sb = BitmapSuperblock.decode(raw)
    except SwapioError:
        return
    again = BitmapSuperblock.decode(sb.encode())
    assert again.events == events
    assert again.version == version
    assert again.chunksize == chunksize


@given(st.sets(st.integers(min_value=0, max_value=999), max_size=60))
def test_set_bits_round_trip_through_bytes(chunks: set[int]) -> None:
    bitmap = Bitmap.create(sync_size_bytes=1000 * 512, chunk_size=512, all_dirty=False)
    for chunk in chunks:
        bitmap.set(chunk)
    again = Bitmap.decode(bitmap.encode())
    assert list(again.dirty_chunks()) == sorted(chunks)
    assert again.count_dirty() == len(chunks)


@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=12),
    st.integers(min_value=0, max_value=400),
)
@settings(max_examples=400)
def test_fuzz_mutated_valid_images_raise_only_clean_errors(
    edits: list[tuple[int, int]], cut: int
) -> None:
    image = bytearray(Bitmap.create(sync_size_bytes=512 * 1000, chunk_size=512).encode())
    for offset, value in edits:
        if offset < len(image):
            image[offset] = value
    try:
        bitmap = Bitmap.decode(bytes(image[: len(image) - cut]))
    except SwapioError:
        return
    assert bitmap.count_dirty() <= bitmap.chunks
