"""XDR primitives (RFC 4506): golden encodings, round trips, and clean failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from swapio_nfs._errors import XdrDecodeError, XdrEncodeError
from swapio_nfs._xdr import Packer, Unpacker, pad_length

from swapio.errors import LocalProtocolError, RemoteProtocolError


def test_integers_are_big_endian_four_and_eight_bytes() -> None:
    p = Packer()
    p.pack_uint(1)
    p.pack_int(-2)
    p.pack_uhyper(0x0102030405060708)
    p.pack_hyper(-1)
    assert p.get_buffer() == (
        b"\x00\x00\x00\x01" + b"\xff\xff\xff\xfe" + bytes(range(1, 9)) + b"\xff" * 8
    )


def test_bool_is_an_enum_of_zero_and_one() -> None:
    p = Packer()
    p.pack_bool(True)
    p.pack_bool(False)
    assert p.get_buffer() == b"\0\0\0\1\0\0\0\0"


def test_variable_opaque_is_length_data_and_zero_padding() -> None:
    p = Packer()
    p.pack_opaque(b"abcde")
    assert p.get_buffer() == b"\0\0\0\5abcde\0\0\0"


def test_string_example_from_rfc_4506_section_7() -> None:
    # RFC 4506 §7: the string "sillyprog" encodes as length 9, the bytes, 3 pad bytes
    p = Packer()
    p.pack_string("sillyprog")
    assert p.get_buffer() == b"\0\0\0\x09sillyprog\0\0\0"


@pytest.mark.parametrize(("n", "pad"), [(0, 0), (1, 3), (2, 2), (3, 1), (4, 0), (5, 3)])
def test_pad_length(n: int, pad: int) -> None:
    assert pad_length(n) == pad


def test_out_of_range_values_are_local_errors() -> None:
    p = Packer()
    for call in (
        lambda: p.pack_uint(-1),
        lambda: p.pack_uint(2**32),
        lambda: p.pack_int(2**31),
        lambda: p.pack_uhyper(2**64),
        lambda: p.pack_fopaque(4, b"abc"),
        lambda: p.pack_opaque(b"x" * 5, maximum=4),
    ):
        with pytest.raises(XdrEncodeError):
            call()
    assert issubclass(XdrEncodeError, LocalProtocolError)


def test_truncated_input_is_a_remote_error_naming_what_was_missing() -> None:
    with pytest.raises(XdrDecodeError, match=r"truncated unsigned hyper: expected 8 bytes"):
        Unpacker(b"\0\0\0\1").unpack_uhyper()
    assert issubclass(XdrDecodeError, RemoteProtocolError)


def test_opaque_length_beyond_the_input_is_refused_without_allocating() -> None:
    u = Unpacker(b"\xff\xff\xff\xf0abcd")
    with pytest.raises(XdrDecodeError, match="truncated fixed opaque"):
        u.unpack_opaque()


def test_opaque_length_beyond_the_maximum_is_refused() -> None:
    with pytest.raises(XdrDecodeError, match="at most 64"):
        Unpacker(b"\0\0\0\x41" + b"x" * 68).unpack_opaque(64)


def test_bool_other_than_zero_or_one_is_refused() -> None:
    with pytest.raises(XdrDecodeError, match="expected 0 or 1, got 2"):
        Unpacker(b"\0\0\0\2").unpack_bool()


def test_invalid_utf8_string_is_refused() -> None:
    with pytest.raises(XdrDecodeError, match="UTF-8"):
        Unpacker(b"\0\0\0\1\xff\0\0\0").unpack_string()


def test_done_reports_trailing_bytes() -> None:
    u = Unpacker(b"\0\0\0\1\0\0")
    u.unpack_uint()
    with pytest.raises(XdrDecodeError, match="trailing data: 2 bytes"):
        u.done()


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("uint"), st.integers(0, 2**32 - 1)),
            st.tuples(st.just("int"), st.integers(-(2**31), 2**31 - 1)),
            st.tuples(st.just("uhyper"), st.integers(0, 2**64 - 1)),
            st.tuples(st.just("hyper"), st.integers(-(2**63), 2**63 - 1)),
            st.tuples(st.just("bool"), st.booleans()),
            st.tuples(st.just("opaque"), st.binary(max_size=40)),
            st.tuples(st.just("string"), st.text(max_size=20)),
        ),
        max_size=12,
    )
)
def test_every_item_round_trips(items: list[tuple[str, object]]) -> None:
    p = Packer()
    for kind, value in items:
        getattr(p, f"pack_{kind}")(value)
    data = p.get_buffer()
    assert len(data) % 4 == 0
    u = Unpacker(data)
    assert [getattr(u, f"unpack_{kind}")() for kind, _ in items] == [v for _, v in items]
    u.done()
