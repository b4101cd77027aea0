"""TCP record marking (RFC 5531 §11): framing and reassembly at every split."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from swapio_nfs._errors import RecordMarkError
from swapio_nfs._record import RecordReader, decode_mark, encode_mark, frame


def records_from(reader: RecordReader) -> list[bytes]:
    out = []
    while (r := reader.next_record()) is not None:
        out.append(bytes(r))
    return out


def test_mark_sets_the_last_fragment_bit_and_length() -> None:
    assert encode_mark(5) == b"\x80\x00\x00\x05"
    assert encode_mark(5, last=False) == b"\x00\x00\x00\x05"
    assert decode_mark(b"\x80\x00\x01\x00") == (True, 256)


def test_frame_splits_long_messages_into_fragments() -> None:
    data = frame(b"abcdefghij", max_fragment=4)
    assert data == (b"\x00\x00\x00\x04abcd" + b"\x00\x00\x00\x04efgh" + b"\x80\x00\x00\x02ij")


def test_multi_fragment_record_is_reassembled() -> None:
    reader = RecordReader()
    reader.feed(frame(b"hello world", max_fragment=3))
    assert records_from(reader) == [b"hello world"]


def test_records_split_at_every_byte_boundary() -> None:
    stream = frame(b"first", 2) + frame(b"") + frame(b"second record", 5)
    for cut in range(len(stream) + 1):
        reader = RecordReader()
        reader.feed(stream[:cut])
        reader.feed(stream[cut:])
        assert records_from(reader) == [b"first", b"", b"second record"]


def test_byte_by_byte_feeding() -> None:
    reader = RecordReader()
    got = []
    for b in frame(b"x" * 37, 8) * 3:
        reader.feed(bytes([b]))
        got += records_from(reader)
    assert got == [b"x" * 37] * 3


def test_oversized_mark_is_refused_before_its_bytes_arrive() -> None:
    reader = RecordReader(max_record=1000)
    with pytest.raises(RecordMarkError, match="maximum is 1000"):
        reader.feed(b"\xff\xff\xff\xff")
    assert reader.buffered == 0


def test_fragments_adding_up_past_the_maximum_are_refused() -> None:
    reader = RecordReader(max_record=10)
    reader.feed(encode_mark(6, last=False) + b"abcdef")
    with pytest.raises(RecordMarkError, match="record of 12 bytes"):
        reader.feed(encode_mark(6, last=True))


def test_reader_stays_broken_after_an_error() -> None:
    reader = RecordReader(max_record=4)
    with pytest.raises(RecordMarkError):
        reader.feed(encode_mark(5))
    with pytest.raises(RecordMarkError):
        reader.feed(frame(b"ok"))


@given(
    st.lists(st.binary(max_size=50), max_size=6),
    st.integers(1, 16),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_any_records_any_fragmenting_any_splits(
    messages: list[bytes], fragment: int, cuts: list[int]
) -> None:
    stream = b"".join(frame(m, fragment) for m in messages)
    points = sorted({min(c, len(stream)) for c in cuts})
    reader = RecordReader(max_record=64)
    got: list[bytes] = []
    start = 0
    for p in [*points, len(stream)]:
        reader.feed(stream[start:p])
        got += records_from(reader)
        start = p
    assert got == messages


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_records_or_a_clean_error(data: bytes) -> None:
    reader = RecordReader(max_record=128)
    try:
        reader.feed(data)
    except RecordMarkError:
        return
    records = records_from(reader)
    assert sum(len(r) for r in records) + reader.buffered <= len(data)
    assert all(len(r) <= 128 for r in records)


def test_an_announced_record_is_not_allocated_before_its_bytes_arrive() -> None:
    reader = RecordReader(max_record=4 << 20)
    tracemalloc.start()
    try:
        reader.feed(encode_mark(4 << 20) + b"0123456789")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.buffered == 10
    assert reader.next_record() is None
    assert peak < 64 * 1024
