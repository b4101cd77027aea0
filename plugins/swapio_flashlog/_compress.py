"""JFFS2 data compression on read: none, zero, zlib, rtime and LZO (``fs/jffs2/compr*.c``).

Sans-I/O.  Every decompressor is bounded by ``dsize`` (a hostile ``csize``/``dsize`` pair
cannot make it allocate more than ``dsize`` bytes) and reports malformed input as
:class:`~swapio_flashlog.errors.CompressionError`, never another exception.
"""

from __future__ import annotations

import zlib

from swapio_flashlog._nodes import Compression
from swapio_flashlog.errors import CompressionError

#: Upper bound on ``dsize`` we are willing to materialise (a hole node may be large).
MAX_DSIZE = 1 << 31


def rtime_compress(data: bytes) -> bytes:
    """Compress with JFFS2's rtime (``jffs2_rtime_compress``): (byte, run) pairs.

    Each output pair is a literal byte and the length of the run that repeats what
    followed the previous occurrence of that byte.  Used to build test vectors; swapio
    writes uncompressed nodes.
    """
    positions = [0] * 256
    out = bytearray()
    pos = 0
    n = len(data)
    while pos < n:
        value = data[pos]
        pos += 1
        out.append(value)
        back = positions[value]
        positions[value] = pos
        run = 0
        while back < pos < n and data[pos] == data[back] and run < 255:
            back += 1
            pos += 1
            run += 1
        out.append(run)
    return bytes(out)


def rtime_decompress(data: bytes, dsize: int) -> bytes:
    """Inverse of :func:`rtime_compress` (``jffs2_rtime_decompress``), exactly ``dsize`` out."""
    positions = [0] * 256
    out = bytearray()
    pos = 0
    n = len(data)
    while len(out) < dsize:
        if pos + 2 > n:
            raise CompressionError(
                f"rtime stream ends after {len(out)} of {dsize} bytes (input {n} bytes)"
            )
        value = data[pos]
        run = data[pos + 1]
        pos += 2
        out.append(value)
        back = positions[value]
        positions[value] = len(out)
        if len(out) + run > dsize:
            raise CompressionError(f"rtime run of {run} overflows dsize {dsize}")
        for i in range(run):  # may overlap itself, so byte by byte
            out.append(out[back + i])
    return bytes(out)


def lzo1x_decompress(data: bytes, dsize: int) -> bytes:  # noqa: PLR0915 - one state machine, as the kernel's
    """LZO1X, as ``lzo1x_decompress_safe`` (``lib/lzo/lzo1x_decompress_safe.c``) reads it
    for ``jffs2_lzo_decompress``: exactly ``dsize`` bytes out, every read and back-reference
    bounds-checked.  (``mkfs.jffs2 -X lzo`` writes it with liblzo2's ``lzo1x_999``.)"""
    out = bytearray()
    src = data
    n = len(src)
    ip = 0

    def need(count: int) -> None:
        if ip + count > n:
            raise CompressionError(f"lzo stream ends early (input {n} bytes)")

    def long_length(base: int) -> int:
        nonlocal ip
        zeros = 0
        need(1)
        while src[ip] == 0:
            zeros += 1
            ip += 1
            need(1)
        value = zeros * 255 + base + src[ip]
        ip += 1
        return value

    def literals(count: int) -> None:
        nonlocal ip
        need(count)
        if len(out) + count > dsize:
            raise CompressionError(f"lzo literals overflow dsize {dsize}")
        out.extend(src[ip : ip + count])
        ip += count

    def match(distance: int, length: int) -> None:
        start = len(out) - distance
        if start < 0 or distance <= 0:
            raise CompressionError("lzo back-reference before the start of the output")
        if len(out) + length > dsize:
            raise CompressionError(f"lzo match overflows dsize {dsize}")
        if distance >= length:
            out.extend(out[start : start + length])
        else:  # overlapping: a repeating pattern, byte by byte
            for i in range(length):
                out.append(out[start + i])

    need(1)
    state = 0
    if src[0] > 17:
        t = src[0] - 17
        ip = 1
        literals(t)
        state = t if t < 4 else 4
    while True:
        need(1)
        t = src[ip]
        ip += 1
        if t < 16:
            if state == 0:  # a literal run
                length = long_length(15) if t == 0 else t
                literals(length + 3)
                state = 4
                continue
            need(1)
            if state != 4:  # a 2-byte match just after a short literal run (M1)
                distance = 1 + (t >> 2) + (src[ip] << 2)
                length = 2
            else:  # a 3-byte match after a long literal run
                distance = 1 + 0x800 + (t >> 2) + (src[ip] << 2)
                length = 3
            ip += 1
            tail = t & 3
        elif t >= 64:  # M2: 3..8 bytes, distance up to 2 KiB
            need(1)
            distance = 1 + ((t >> 2) & 7) + (src[ip] << 3)
            ip += 1
            length = (t >> 5) + 1
            tail = t & 3
        elif t >= 32:  # M3: distance up to 16 KiB
            length = (t & 31) + 2
            if length == 2:
                length = long_length(31) + 2
            need(2)
            word = src[ip] | src[ip + 1] << 8
            ip += 2
            distance = 1 + (word >> 2)
            tail = word & 3
        else:  # M4: distance 16..48 KiB, or the end of the stream
            length = (t & 7) + 2
            if length == 2:
                length = long_length(7) + 2
            need(2)
            word = src[ip] | src[ip + 1] << 8
            ip += 2
            distance = ((t & 8) << 11) + (word >> 2)
            if distance == 0:
                if length != 3 or ip != n:
                    raise CompressionError("lzo end-of-stream marker is malformed")
                break
            distance += 0x4000
            tail = word & 3
        match(distance, length)
        literals(tail)
        state = tail
    if len(out) != dsize:
        raise CompressionError(f"lzo data decompresses to {len(out)} bytes, dsize is {dsize}")
    return bytes(out)


def decompress(compr: int, data: bytes, dsize: int) -> bytes:
    """Return the ``dsize`` uncompressed bytes of a node's payload ``data``."""
    if dsize < 0 or dsize > MAX_DSIZE:
        raise CompressionError(f"dsize {dsize} out of range")
    if compr == Compression.NONE:
        if len(data) != dsize:
            raise CompressionError(f"uncompressed node with csize {len(data)} != dsize {dsize}")
        return data
    if compr == Compression.ZERO:
        return bytes(dsize)
    if compr == Compression.ZLIB:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, dsize)
        except zlib.error as exc:
            raise CompressionError(f"zlib data does not inflate: {exc}") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise CompressionError(f"zlib data inflates to more than dsize {dsize} bytes")
        if len(out) != dsize:
            raise CompressionError(f"zlib data inflates to {len(out)} bytes, dsize is {dsize}")
        return out
    if compr == Compression.RTIME:
        return rtime_decompress(data, dsize)
    if compr == Compression.LZO:
        return lzo1x_decompress(data, dsize)
    try:
        name = Compression(compr).name.lower()
    except ValueError:
        name = f"unknown ({compr})"
    raise CompressionError(f"compression {name} is not supported (only none/zero/zlib/rtime/lzo)")
