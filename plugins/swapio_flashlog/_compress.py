"""JFFS2 data compression on read: none, zero, zlib and rtime (``fs/jffs2/compr*.c``).

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
    try:
        name = Compression(compr).name.lower()
    except ValueError:
        name = f"unknown ({compr})"
    raise CompressionError(f"compression {name} is not supported (only none/zero/zlib/rtime)")
