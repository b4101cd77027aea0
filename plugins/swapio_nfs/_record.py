"""TCP record marking for ONC RPC (RFC 5531 §11), without I/O.

A record is one or more fragments; each fragment starts with a four-byte big-endian mark
whose top bit says "last fragment" and whose low 31 bits give the fragment's length.
:class:`RecordReader` reassembles records from bytes split at arbitrary boundaries and
refuses, at the mark, any record that would exceed its maximum, so a hostile length never
causes an allocation: the reader only ever holds bytes it was actually given.
"""

from __future__ import annotations

import struct
from collections import deque

from swapio.errors import LocalProtocolError
from swapio_nfs._errors import RecordMarkError

LAST_FRAGMENT = 0x80000000
MAX_FRAGMENT = 0x7FFFFFFF
MARK_SIZE = 4
_MARK = struct.Struct(">I")

DEFAULT_MAX_RECORD = 4 * 1024 * 1024 + 64 * 1024
"""Largest record accepted by default: a 4 MiB READ reply plus headers."""


def encode_mark(length: int, last: bool = True) -> bytes:
    """The record mark for a fragment of ``length`` bytes (RFC 5531 §11)."""
    if not 0 <= length <= MAX_FRAGMENT:
        raise LocalProtocolError(f"fragment length must be 0..2**31-1, got {length}")
    return _MARK.pack(length | (LAST_FRAGMENT if last else 0))


def frame(message: bytes, max_fragment: int = MAX_FRAGMENT) -> bytes:
    """``message`` as one record, split into fragments of at most ``max_fragment`` bytes."""
    if max_fragment <= 0 or max_fragment > MAX_FRAGMENT:
        raise LocalProtocolError(f"max_fragment must be 1..2**31-1, got {max_fragment}")
    if len(message) <= max_fragment:
        return encode_mark(len(message)) + message
    parts: list[bytes] = []
    view = memoryview(message)
    for start in range(0, len(message), max_fragment):
        chunk = view[start : start + max_fragment]
        parts.append(encode_mark(len(chunk), start + max_fragment >= len(message)))
        parts.append(bytes(chunk))
    return b"".join(parts)


def decode_mark(mark: bytes | bytearray | memoryview) -> tuple[bool, int]:
    """``(last, length)`` of a four-byte record mark."""
    value = int(_MARK.unpack_from(mark)[0])
    return bool(value & LAST_FRAGMENT), value & MAX_FRAGMENT


class RecordReader:
    """Reassemble RPC records from a byte stream (RFC 5531 §11).

    :param max_record: largest record (sum of its fragments) accepted; a mark that would
        exceed it raises :class:`RecordMarkError` before its bytes are read.

    After an error the stream is out of sync and the reader refuses further input; the
    connection must be closed.
    """

    __slots__ = ("_broken", "_buf", "_current", "_fragment_left", "_last", "_max", "_ready")

    def __init__(self, max_record: int = DEFAULT_MAX_RECORD) -> None:
        if max_record <= 0:
            raise LocalProtocolError(f"max_record must be > 0, got {max_record}")
        self._max = max_record
        self._buf = bytearray()  # unparsed input (at most one mark's worth + one fragment)
        self._current = bytearray()  # fragments of the record being assembled
        self._fragment_left = -1  # bytes still expected of the current fragment; -1: need mark
        self._last = False  # the current fragment ends its record
        self._ready: deque[bytearray] = deque()
        self._broken: RecordMarkError | None = None

    @property
    def max_record(self) -> int:
        """The largest record accepted."""
        return self._max

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes; complete records become available from :meth:`next_record`."""
        if self._broken is not None:
            raise self._broken
        self._buf += data
        try:
            self._parse()
        except RecordMarkError as exc:
            self._broken = exc
            self._buf.clear()
            self._current.clear()
            raise

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        end = len(buf)
        while True:
            if self._fragment_left < 0:
                if end - pos < MARK_SIZE:
                    break
                last, length = decode_mark(buf[pos : pos + MARK_SIZE])
                if len(self._current) + length > self._max:
                    raise RecordMarkError(
                        f"record mark announces a fragment of {length} bytes, making a record "
                        f"of {len(self._current) + length} bytes; the maximum is {self._max}"
                    )
                pos += MARK_SIZE
                self._fragment_left = length
                self._last = last
            take = min(self._fragment_left, end - pos)
            if take:
                if not self._current and take == self._fragment_left and self._last:
                    # the common case: a whole single-fragment record in the buffer
                    self._ready.append(buf[pos : pos + take])
                    pos += take
                    self._fragment_left = -1
                    continue
                self._current += buf[pos : pos + take]
                pos += take
                self._fragment_left -= take
            if self._fragment_left:
                break
            self._fragment_left = -1
            if self._last:
                self._ready.append(self._current)
                self._current = bytearray()
        del buf[:pos]

    def next_record(self) -> bytearray | None:
        """The oldest complete record, or None when more data is needed."""
        if self._ready:
            return self._ready.popleft()
        return None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete record."""
        return len(self._buf) + len(self._current)
