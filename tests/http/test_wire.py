"""The page server's frame codec: round trips, every limit, fuzzed bytes, every split."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_http._wire import (
    REQUEST_HEADER,
    RESPONSE_HEADER,
    Flag,
    FrameError,
    Limits,
    Op,
    RequestHeader,
    RequestParser,
    RequestStreamParser,
    ResponseHeader,
    encode_request_header,
    encode_response_header,
    parse_request,
    parse_request_header,
    parse_response_header,
)

from swapio.errors import LocalProtocolError, RemoteProtocolError

LIMITS = Limits(max_pages=8, max_page_size=4096)


def frame(op: Op, slot: int, pages: list[bytes], page_size: int = 512) -> bytes:
    header = RequestHeader(op=op, slot=slot, count=len(pages) or 1, page_size=page_size)
    return encode_request_header(header) + b"".join(pages if op is Op.SWAP_OUT else [])


def test_swap_out_frame_round_trips() -> None:
    pages = [bytes([i]) * 512 for i in range(3)]
    request = parse_request(frame(Op.SWAP_OUT, 7, pages), LIMITS)
    assert request.header == RequestHeader(Op.SWAP_OUT, 7, 3, 512)
    assert [bytes(request.page(i)) for i in range(3)] == pages


def test_swap_in_frame_has_no_body() -> None:
    raw = encode_request_header(RequestHeader(Op.SWAP_IN, 0, 8, 4096))
    assert len(raw) == REQUEST_HEADER.size
    assert parse_request(raw, LIMITS).data == b""


def test_header_layout_is_big_endian() -> None:
    header = RequestHeader(Op.DISCARD, 0x0102030405060708, 2, 512, Flag.MEMALLOC)
    raw = encode_request_header(header)
    assert raw == b"SWPQ\x01\x03\x00\x01\x00\x00\x02\x00\x01\x02\x03\x04\x05\x06\x07\x08" + (
        b"\x00\x00\x00\x02\x00\x00\x00\x00"
    )


def test_too_many_pages_is_413() -> None:
    raw = encode_request_header(RequestHeader(Op.SWAP_IN, 0, 9, 512))
    with pytest.raises(FrameError, match="exceeds this server's limit 8") as info:
        parse_request_header(raw, LIMITS)
    assert info.value.status_hint == 413


def test_page_size_over_limit_is_413() -> None:
    raw = encode_request_header(RequestHeader(Op.SWAP_IN, 0, 1, 8192))
    with pytest.raises(FrameError) as info:
        parse_request_header(raw, LIMITS)
    assert info.value.status_hint == 413


@pytest.mark.parametrize("page_size", [0, 256, 1000, 4097])
def test_page_size_must_be_power_of_two(page_size: int) -> None:
    raw = REQUEST_HEADER.pack(b"SWPQ", 1, 1, 0, page_size, 0, 1, 0)
    with pytest.raises(FrameError, match="power of two"):
        parse_request_header(raw, LIMITS)


def test_zero_count_is_rejected() -> None:
    raw = REQUEST_HEADER.pack(b"SWPQ", 1, 2, 0, 512, 0, 0, 0)
    with pytest.raises(FrameError, match="page count is 0"):
        parse_request_header(raw, LIMITS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((b"SWPX", 1, 1, 0, 512, 0, 1, 0), "bad magic"),
        ((b"SWPQ", 2, 1, 0, 512, 0, 1, 0), "unsupported frame version 2"),
        ((b"SWPQ", 1, 9, 0, 512, 0, 1, 0), "unknown op 9"),
        ((b"SWPQ", 1, 1, 4, 512, 0, 1, 0), "unknown flag bits"),
        ((b"SWPQ", 1, 1, 0, 512, 0, 1, 5), "reserved field must be 0"),
        ((b"SWPQ", 1, 1, 0, 512, (1 << 64) - 1, 2, 0), "overflow"),
    ],
)
def test_malformed_header_names_the_field(fields: tuple[object, ...], message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_request_header(REQUEST_HEADER.pack(*fields), LIMITS)


def test_content_length_must_match_page_count() -> None:
    raw = encode_request_header(RequestHeader(Op.SWAP_OUT, 0, 2, 512))
    with pytest.raises(FrameError, match="Content-Length 1056 does not match") as info:
        parse_request_header(raw, LIMITS, content_length=REQUEST_HEADER.size + 1024 + 4)
    assert info.value.code == "length-mismatch"


def test_truncated_body_is_reported_with_counts() -> None:
    raw = frame(Op.SWAP_OUT, 0, [b"a" * 512, b"b" * 512])
    parser = RequestParser(LIMITS)
    parser.receive_data(raw[:-100])
    parser.receive_data(b"")
    with pytest.raises(FrameError, match="924 of 1024 body bytes") as info:
        parser.result()
    assert info.value.code == "truncated"


def test_truncated_header_is_reported() -> None:
    parser = RequestParser(LIMITS)
    parser.receive_data(b"SWPQ\x01")
    parser.receive_data(b"")
    with pytest.raises(FrameError, match="5 of 28 header bytes"):
        parser.result()


def test_trailing_bytes_are_rejected() -> None:
    raw = frame(Op.SWAP_OUT, 0, [b"a" * 512]) + b"extra"
    with pytest.raises(FrameError, match="5 bytes after the end of the frame"):
        RequestParser(LIMITS).receive_data(raw)


def test_result_before_eof_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        RequestParser(LIMITS).result()


def test_encoder_refuses_impossible_headers() -> None:
    with pytest.raises(LocalProtocolError):
        encode_request_header(RequestHeader(Op.SWAP_IN, 0, 0, 512))
    with pytest.raises(LocalProtocolError):
        encode_request_header(RequestHeader(Op.SWAP_IN, 0, 1, 3000))


def test_response_header_round_trips_and_checks_the_request() -> None:
    raw = encode_response_header(ResponseHeader(Op.SWAP_IN, 4, 4096))
    assert len(raw) == RESPONSE_HEADER.size
    assert parse_response_header(raw, Op.SWAP_IN, 4, 4096).body_size == 4 * 4096
    with pytest.raises(FrameError, match="covers 4 x 4096"):
        parse_response_header(raw, Op.SWAP_IN, 5, 4096)
    with pytest.raises(FrameError, match="request was SWAP_OUT"):
        parse_response_header(raw, Op.SWAP_OUT, 4, 4096)


def test_frame_error_is_a_remote_protocol_error() -> None:
    assert issubclass(FrameError, RemoteProtocolError)


@st.composite
def valid_frames(draw: st.DrawFn) -> tuple[bytes, RequestHeader, bytes]:
    op = draw(st.sampled_from(list(Op)))
    page_size = draw(st.sampled_from([512, 1024, 4096]))
    count = draw(st.integers(1, LIMITS.max_pages))
    slot = draw(st.integers(0, (1 << 64) - count))
    flags = draw(st.sampled_from(list(Flag)))
    header = RequestHeader(op, slot, count, page_size, flags)
    body = draw(st.binary(min_size=header.body_size, max_size=header.body_size))
    return encode_request_header(header) + body, header, body


@settings(max_examples=200)
@given(valid_frames(), st.data())
def test_any_split_of_a_valid_frame_parses_identically(
    case: tuple[bytes, RequestHeader, bytes], data: st.DataObject
) -> None:
    raw, header, body = case
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    parser = RequestParser(LIMITS, len(raw))
    start = 0
    for cut in [*cuts, len(raw)]:
        if cut > start:
            parser.receive_data(raw[start:cut])
            start = cut
    parser.receive_data(b"")
    request = parser.result()
    assert request.header == header
    assert request.data == body
    size = header.page_size
    expected = [body[i * size : (i + 1) * size] for i in range(len(body) // size)]
    assert [bytes(page) for page in request.pages()] == expected


@settings(max_examples=500)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_random_bytes_raise_only_frame_errors(raw: bytes, content_length: int | None) -> None:
    parser = RequestParser(LIMITS, content_length)
    try:
        parser.receive_data(raw)
        parser.receive_data(b"")
        request = parser.result()
    except FrameError as exc:
        status = exc.status_hint
    else:
        assert len(request.data) == request.header.body_size <= LIMITS.max_frame_bytes
        return
    assert 400 <= status < 500


@settings(max_examples=300)
@given(valid_frames(), st.integers(0, 27), st.integers(0, 255))
def test_corrupted_headers_never_crash(
    case: tuple[bytes, RequestHeader, bytes], position: int, value: int
) -> None:
    raw = bytearray(case[0])
    raw[position] = value
    try:
        request = parse_request(bytes(raw), LIMITS)
    except FrameError:
        return
    assert request.header.count <= LIMITS.max_pages
    assert request.header.page_size <= LIMITS.max_page_size


@given(st.binary(min_size=16, max_size=16))
def test_response_parser_rejects_or_accepts_cleanly(raw: bytes) -> None:
    try:
        header = parse_response_header(raw, Op.SWAP_IN, 1, 4096)
    except FrameError:
        return
    assert header == ResponseHeader(Op.SWAP_IN, 1, 4096)
    assert struct.unpack("!4s", raw[:4])[0] == b"SWPR"


@st.composite
def frame_sequences(draw: st.DrawFn) -> tuple[bytes, list[tuple[RequestHeader, bytes]]]:
    frames = []
    total_pages = 0
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(list(Op)))
        count = draw(st.integers(1, 2))
        total_pages += count
        header = RequestHeader(op, draw(st.integers(0, 1000)), count, 512)
        body = draw(st.binary(min_size=header.body_size, max_size=header.body_size))
        frames.append((header, body))
    raw = b"".join(encode_request_header(h) + b for h, b in frames)
    return raw, frames


@settings(max_examples=200)
@given(frame_sequences(), st.data())
def test_stream_parser_splits_consecutive_frames_at_any_cut(
    case: tuple[bytes, list[tuple[RequestHeader, bytes]]], data: st.DataObject
) -> None:
    raw, frames = case
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    parser = RequestStreamParser(LIMITS, len(raw))
    start = 0
    for cut in [*cuts, len(raw)]:
        if cut > start:
            parser.receive_data(raw[start:cut])
            start = cut
    parser.receive_data(b"")
    got = parser.result()
    assert [(r.header, bytes(r.data)) for r in got] == frames


def test_stream_parser_limits_frames_per_request() -> None:
    limits = Limits(max_pages=8, max_page_size=4096, max_frames=2)
    raw = b"".join(encode_request_header(RequestHeader(Op.SWAP_IN, i, 1, 512)) for i in range(3))
    with pytest.raises(FrameError, match="more than 2 frames") as info:
        RequestStreamParser(limits, len(raw)).receive_data(raw)
    assert info.value.status_hint == 413


def test_stream_parser_limits_pages_per_request() -> None:
    raw = b"".join(encode_request_header(RequestHeader(Op.SWAP_IN, 0, 5, 512)) for _ in range(2))
    with pytest.raises(FrameError, match="10 pages in one request exceeds"):
        RequestStreamParser(LIMITS, len(raw)).receive_data(raw)


def test_stream_parser_reports_a_truncated_second_frame() -> None:
    first = encode_request_header(RequestHeader(Op.SWAP_IN, 0, 1, 512))
    raw = first + encode_request_header(RequestHeader(Op.SWAP_OUT, 1, 1, 512)) + b"x" * 100
    parser = RequestStreamParser(LIMITS)
    parser.receive_data(raw)
    parser.receive_data(b"")
    with pytest.raises(FrameError, match="100 of 512 body bytes"):
        parser.result()


def test_stream_parser_refuses_frames_past_content_length() -> None:
    raw = encode_request_header(RequestHeader(Op.SWAP_OUT, 0, 2, 512)) + bytes(1024)
    with pytest.raises(FrameError, match="ends at byte 1052"):
        RequestStreamParser(LIMITS, 600).receive_data(raw)


def test_stream_parser_refuses_an_empty_body() -> None:
    parser = RequestStreamParser(LIMITS, 0)
    parser.receive_data(b"")
    with pytest.raises(FrameError, match="empty request body"):
        parser.result()
