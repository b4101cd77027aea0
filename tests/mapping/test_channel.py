"""Control-channel framing: JSON lines, whatever the chunk boundaries."""

from __future__ import annotations

import pytest

from swapio.mapping._channel import LineDecoder, encode


def test_messages_split_at_every_byte_decode_the_same() -> None:
    stream = encode({"op": "sync"}) + encode({"ok": True, "pages": 3})
    for cut in range(len(stream) + 1):
        dec = LineDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert got == [{"op": "sync"}, {"ok": True, "pages": 3}]


def test_a_line_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="not an object"):
        LineDecoder().feed(b"[1]\n")
