"""XDR encoding and decoding (RFC 4506).

Only the primitives ONC RPC, MOUNT and NFSv3 need: 32- and 64-bit integers (§4.1, §4.5),
booleans (§4.4), fixed and variable-length opaque data (§4.9, §4.10) and strings (§4.11), all
big-endian and padded to a multiple of four bytes.  Pure code: bytes in, values out.

Decoding never allocates more than the input it was given: a length field is checked against
the bytes that remain (and against the caller's maximum) before anything is sliced.
"""

from __future__ import annotations

import struct

from swapio_nfs._errors import XdrDecodeError, XdrEncodeError

Buffer = bytes | bytearray | memoryview

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")

UNIT = 4
"""RFC 4506 §3: every item occupies a multiple of four bytes."""

_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def pad_length(n: int) -> int:
    """Bytes of zero padding that follow ``n`` bytes of opaque data (RFC 4506 §4.9)."""
    return (UNIT - n % UNIT) % UNIT


class Packer:
    """Append XDR items to a growing buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def get_buffer(self) -> bytes:
        """Return everything packed so far."""
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def pack_uint(self, value: int) -> None:
        """Unsigned 32-bit integer (RFC 4506 §4.2)."""
        if not 0 <= value <= 0xFFFFFFFF:
            raise XdrEncodeError(f"unsigned int out of range: expected 0..2**32-1, got {value}")
        self._buf += _U32.pack(value)

    def pack_int(self, value: int) -> None:
        """Signed 32-bit integer (RFC 4506 §4.1)."""
        if not -(2**31) <= value < 2**31:
            raise XdrEncodeError(f"int out of range: expected -2**31..2**31-1, got {value}")
        self._buf += _I32.pack(value)

    def pack_uhyper(self, value: int) -> None:
        """Unsigned 64-bit integer (RFC 4506 §4.5)."""
        if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
            raise XdrEncodeError(f"unsigned hyper out of range: expected 0..2**64-1, got {value}")
        self._buf += _U64.pack(value)

    def pack_hyper(self, value: int) -> None:
        """Signed 64-bit integer (RFC 4506 §4.5)."""
        if not -(2**63) <= value < 2**63:
            raise XdrEncodeError(f"hyper out of range: got {value}")
        self._buf += _I64.pack(value)

    def pack_bool(self, value: bool) -> None:
        """Boolean as an enum of FALSE=0, TRUE=1 (RFC 4506 §4.4)."""
        self._buf += _U32.pack(1 if value else 0)

    def pack_fopaque(self, size: int, data: Buffer) -> None:
        """Fixed-length opaque data of exactly ``size`` bytes (RFC 4506 §4.9)."""
        view = memoryview(data).cast("B")
        if len(view) != size:
            raise XdrEncodeError(f"fixed opaque: expected {size} bytes, got {len(view)}")
        self._buf += view
        self._buf += _PAD[size % UNIT]

    def pack_opaque(self, data: Buffer, maximum: int = 0xFFFFFFFF) -> None:
        """Variable-length opaque data (RFC 4506 §4.10)."""
        view = memoryview(data).cast("B")
        if len(view) > maximum:
            raise XdrEncodeError(f"opaque too long: at most {maximum} bytes, got {len(view)}")
        self._buf += _U32.pack(len(view))
        self._buf += view
        self._buf += _PAD[len(view) % UNIT]

    def pack_string(self, text: str, maximum: int = 0xFFFFFFFF) -> None:
        """String as UTF-8 opaque data (RFC 4506 §4.11)."""
        self.pack_opaque(text.encode("utf-8"), maximum)


class Unpacker:
    """Read XDR items from a buffer, checking every length against what remains."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: Buffer, offset: int = 0) -> None:
        self._data = memoryview(data).cast("B")
        self._pos = offset
        self._end = len(self._data)

    @property
    def position(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return self._end - self._pos

    def done(self) -> None:
        """Require that the whole input was consumed."""
        if self._pos != self._end:
            raise XdrDecodeError(
                f"trailing data: {self._end - self._pos} bytes after the last item"
            )

    def _take(self, n: int, what: str) -> int:
        pos = self._pos
        if n > self._end - pos:
            raise XdrDecodeError(
                f"truncated {what}: expected {n} bytes at offset {pos}, {self._end - pos} left"
            )
        self._pos = pos + n
        return pos

    def unpack_uint(self) -> int:
        """Unsigned 32-bit integer (RFC 4506 §4.2)."""
        pos = self._take(4, "unsigned int")
        return int(_U32.unpack_from(self._data, pos)[0])

    def unpack_int(self) -> int:
        """Signed 32-bit integer (RFC 4506 §4.1)."""
        pos = self._take(4, "int")
        return int(_I32.unpack_from(self._data, pos)[0])

    def unpack_uhyper(self) -> int:
        """Unsigned 64-bit integer (RFC 4506 §4.5)."""
        pos = self._take(8, "unsigned hyper")
        return int(_U64.unpack_from(self._data, pos)[0])

    def unpack_hyper(self) -> int:
        """Signed 64-bit integer (RFC 4506 §4.5)."""
        pos = self._take(8, "hyper")
        return int(_I64.unpack_from(self._data, pos)[0])

    def unpack_bool(self) -> bool:
        """Boolean; any value other than 0 or 1 is a protocol error (RFC 4506 §4.4)."""
        value = self.unpack_uint()
        if value > 1:
            raise XdrDecodeError(f"bool: expected 0 or 1, got {value}")
        return value == 1

    def unpack_fopaque_view(self, size: int) -> memoryview:
        """Fixed-length opaque data as a view into the input (RFC 4506 §4.9)."""
        pos = self._take(size + pad_length(size), "fixed opaque")
        return self._data[pos : pos + size]

    def unpack_fopaque(self, size: int) -> bytes:
        """Fixed-length opaque data (RFC 4506 §4.9)."""
        return bytes(self.unpack_fopaque_view(size))

    def unpack_opaque_view(self, maximum: int = 0xFFFFFFFF) -> memoryview:
        """Variable-length opaque data as a view into the input, no copy (RFC 4506 §4.10)."""
        size = self.unpack_uint()
        if size > maximum:
            raise XdrDecodeError(f"opaque too long: at most {maximum} bytes allowed, got {size}")
        return self.unpack_fopaque_view(size)

    def unpack_opaque(self, maximum: int = 0xFFFFFFFF) -> bytes:
        """Variable-length opaque data (RFC 4506 §4.10)."""
        return bytes(self.unpack_opaque_view(maximum))

    def unpack_string(self, maximum: int = 0xFFFFFFFF) -> str:
        """String (RFC 4506 §4.11); invalid UTF-8 is a protocol error."""
        raw = self.unpack_opaque_view(maximum)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise XdrDecodeError(f"string is not valid UTF-8: {exc}") from None
