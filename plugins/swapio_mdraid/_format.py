"""The md write-intent bitmap on-disk format: ``bitmap_super_t`` and the bits after it.

Sans-I/O: bytes in, records out, and back.  Implements ``bitmap_super_t``
(``drivers/md/md-bitmap.h``, mdadm ``bitmap.h``): a 256-byte little-endian superblock,
followed by one bit per chunk, chunk *k* at byte ``256 + k // 8``, bit ``k % 8``
(LSB first, the kernel's ``set_bit_le``).  Versions 3 (host-endian, read here as the
little-endian hosts that wrote every such file we can meet) and 4 (little-endian, what
``md_bitmap_new_disk_sb`` writes) are read; version 5 (clustered) and anything else is
refused with :class:`UnsupportedBitmapVersionError`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

from swapio_mdraid.errors import (
    BitmapFormatError,
    BitmapParameterError,
    UnsupportedBitmapVersionError,
)

#: ``BITMAP_MAGIC``: the little-endian bytes spell ``bitm``.
BITMAP_MAGIC = 0x6D746962
#: Size of ``bitmap_super_t`` (``BUILD_BUG_ON(sizeof(bitmap_super_t) != 256)``).
SUPERBLOCK_SIZE = 256
#: md counts sizes in 512-byte sectors (``BITMAP_BLOCK_SHIFT`` = 9).
SECTOR_SIZE = 512
#: Smallest chunk the kernel accepts ("bitmap chunksize too small").
MIN_CHUNK_SIZE = 512
#: Largest chunk size: the biggest power of two the 32-bit ``chunksize`` field holds.
MAX_CHUNK_SIZE = 1 << 31
#: ``COUNTER_MAX``: the low 14 bits of a ``bitmap_counter_t``; also the write-behind limit.
COUNTER_MAX = 0x3FFF
#: ``DEFAULT_BITMAP_DELAY`` / the kernel's daemon_sleep default, seconds.
DEFAULT_DAEMON_SLEEP = 5
#: Largest daemon_sleep we accept (the kernel's bound is MAX_SCHEDULE_TIMEOUT / HZ).
MAX_DAEMON_SLEEP = 0x7FFFFFFF // 1000
CLUSTER_NAME_SIZE = 64
#: Most chunks :meth:`Bitmap.create` makes: mdadm ``CreateBitmap`` keeps a bitmap at or below
#: 2^21 chunks ("2^11 fill up one 4K page (2 bytes per chunk), and 2^10 address of those fill
#: up a 4K indexing page"): 256 KiB of bits, 4 MiB of in-memory counters.  Larger bitmaps
#: made elsewhere are still read.
MAX_CHUNKS = 1 << 21

_SB = struct.Struct("<II16sQQQIIIIII64s120s")
assert _SB.size == SUPERBLOCK_SIZE


class BitmapVersion(enum.IntEnum):
    """``BITMAP_MAJOR_*``: the superblock version numbers."""

    LO = 3  # BITMAP_MAJOR_LO / BITMAP_MAJOR_HOSTENDIAN
    HI = 4  # BITMAP_MAJOR_HI: little-endian, what new bitmaps use
    CLUSTERED = 5  # BITMAP_MAJOR_CLUSTERED: md-cluster only


#: The versions this codec reads and writes.
SUPPORTED_VERSIONS = frozenset({BitmapVersion.LO, BitmapVersion.HI})


class BitmapState(enum.IntFlag):
    """``enum bitmap_state`` as masks (the kernel enum holds bit numbers)."""

    ACTIVE = 0x1  # mdadm's BITMAP_ACTIVE
    STALE = 0x2  # BITMAP_STALE = 1: "the bitmap file is out of date or had -EIO"
    WRITE_ERROR = 0x4  # BITMAP_WRITE_ERROR = 2: never written to disk
    HOSTENDIAN = 0x8000  # BITMAP_HOSTENDIAN = 15: in-memory marker for version 3


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def check_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if md accepts it (a power of two >= 512 that fits 32 bits)."""
    if chunk_size < MIN_CHUNK_SIZE:
        raise BitmapParameterError(
            f"chunk size {chunk_size} is below the minimum of {MIN_CHUNK_SIZE} bytes"
        )
    if not _is_power_of_two(chunk_size):
        raise BitmapParameterError(f"chunk size {chunk_size} is not a power of two")
    if chunk_size > 0xFFFFFFFF:
        raise BitmapParameterError(f"chunk size {chunk_size} does not fit in 32 bits")
    return chunk_size


def bitmap_bits(sync_size: int, chunk_size: int) -> int:
    """Number of chunks (bits) for ``sync_size`` sectors: mdadm ``bitmap_bits()``."""
    return (sync_size * SECTOR_SIZE + chunk_size - 1) // chunk_size


def bits_bytes(chunks: int) -> int:
    """Bytes of bits after the superblock for ``chunks`` chunks."""
    return (chunks + 7) // 8


def format_uuid(uuid: bytes) -> str:
    """The UUID as mdadm prints it on a little-endian host: four groups of 8 hex digits."""
    hexed = uuid.hex()
    return ":".join(hexed[i : i + 8] for i in range(0, 32, 8))


def parse_uuid(text: str) -> bytes:
    """Parse a UUID typed as 32 hex digits, optionally split by ``:`` or ``-``."""
    digits = text.replace(":", "").replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise BitmapParameterError(
            f"uuid {text!r} is not 32 hex digits (optionally grouped by ':' or '-')"
        )
    return raw


@dataclass(frozen=True)
class BitmapSuperblock:
    """``bitmap_super_t``: every field, decoded.  ``sync_size`` is in 512-byte sectors."""

    version: int = BitmapVersion.HI
    uuid: bytes = bytes(16)
    events: int = 0
    events_cleared: int = 0
    sync_size: int = 0
    state: int = 0
    chunksize: int = 4096
    daemon_sleep: int = DEFAULT_DAEMON_SLEEP
    write_behind: int = 0
    sectors_reserved: int = 0
    nodes: int = 0
    cluster_name: bytes = b""
    magic: int = BITMAP_MAGIC

    @property
    def chunks(self) -> int:
        """Bits in the bitmap: one per chunk of the sync range."""
        return bitmap_bits(self.sync_size, self.chunksize)

    @property
    def sync_size_bytes(self) -> int:
        return self.sync_size * SECTOR_SIZE

    @property
    def stale(self) -> bool:
        return bool(self.state & BitmapState.STALE)

    @property
    def storage_bytes(self) -> int:
        """Superblock plus bits (``md_bitmap_storage_alloc`` before page rounding)."""
        return SUPERBLOCK_SIZE + bits_bytes(self.chunks)

    def check(self) -> None:
        """Apply the checks of ``md_bitmap_read_sb()``; raise :class:`BitmapFormatError`."""
        if self.magic != BITMAP_MAGIC:
            if self.magic == int.from_bytes(BITMAP_MAGIC.to_bytes(4, "little"), "big"):
                raise UnsupportedBitmapVersionError(
                    "bitmap superblock is big-endian (a host-endian version 3 bitmap written "
                    "on a big-endian machine); only little-endian bitmaps are supported"
                )
            raise BitmapFormatError(
                f"bad bitmap magic 0x{self.magic:08x}, expected 0x{BITMAP_MAGIC:08x} ('bitm')"
            )
        if self.version not in SUPPORTED_VERSIONS:
            if self.version == BitmapVersion.CLUSTERED:
                raise UnsupportedBitmapVersionError(
                    "bitmap version 5 (md-cluster) is not supported; expected version 3 or 4"
                )
            raise UnsupportedBitmapVersionError(
                f"unrecognized bitmap superblock version {self.version}; expected 3 or 4"
            )
        try:
            check_chunk_size(self.chunksize)
        except BitmapParameterError as exc:
            raise BitmapFormatError(f"bitmap superblock: {exc}") from None
        if not 1 <= self.daemon_sleep <= MAX_DAEMON_SLEEP:
            raise BitmapFormatError(
                f"bitmap superblock: daemon sleep period {self.daemon_sleep} s out of range "
                f"(1 - {MAX_DAEMON_SLEEP})"
            )
        if self.write_behind > COUNTER_MAX:
            raise BitmapFormatError(
                f"bitmap superblock: write-behind limit {self.write_behind} out of range "
                f"(0 - {COUNTER_MAX})"
            )

    def encode(self) -> bytes:
        """The 256 on-disk bytes (little-endian; ``WRITE_ERROR``/``HOSTENDIAN`` stripped)."""
        self.check()
        if len(self.uuid) != 16:
            raise BitmapParameterError(f"uuid must be 16 bytes, got {len(self.uuid)}")
        if len(self.cluster_name) > CLUSTER_NAME_SIZE:
            raise BitmapParameterError(
                f"cluster name of {len(self.cluster_name)} bytes exceeds {CLUSTER_NAME_SIZE}"
            )
        state = self.state & ~(BitmapState.WRITE_ERROR | BitmapState.HOSTENDIAN)
        try:
            return _SB.pack(
                self.magic,
                self.version,
                self.uuid,
                self.events,
                self.events_cleared,
                self.sync_size,
                state,
                self.chunksize,
                self.daemon_sleep,
                self.write_behind,
                self.sectors_reserved,
                self.nodes,
                self.cluster_name,
                bytes(120),
            )
        except struct.error as exc:
            raise BitmapParameterError(f"bitmap superblock field out of range: {exc}") from None

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> BitmapSuperblock:
        """Decode and check the first 256 bytes of ``data``."""
        view = memoryview(data).cast("B")
        if view.nbytes < SUPERBLOCK_SIZE:
            raise BitmapFormatError(
                f"bitmap truncated: superblock needs {SUPERBLOCK_SIZE} bytes, found {view.nbytes}"
            )
        (
            magic,
            version,
            uuid,
            events,
            events_cleared,
            sync_size,
            state,
            chunksize,
            daemon_sleep,
            write_behind,
            sectors_reserved,
            nodes,
            cluster_name,
            _pad,
        ) = _SB.unpack_from(view, 0)
        sb = cls(
            magic=magic,
            version=version,
            uuid=bytes(uuid),
            events=events,
            events_cleared=events_cleared,
            sync_size=sync_size,
            state=state,
            chunksize=chunksize,
            daemon_sleep=daemon_sleep,
            write_behind=write_behind,
            sectors_reserved=sectors_reserved,
            nodes=nodes,
            cluster_name=bytes(cluster_name).rstrip(b"\0"),
        )
        sb.check()
        return sb


class Bitmap:
    """A whole bitmap image in memory: the superblock and one bit per chunk.

    The bit bytes are kept exactly as read (bits past the last chunk included) so that
    re-encoding an unchanged bitmap gives back the same bytes.
    """

    def __init__(self, superblock: BitmapSuperblock, bits: bytearray | None = None) -> None:
        superblock.check()
        self.superblock = superblock
        self.chunks = superblock.chunks
        need = bits_bytes(self.chunks)
        if bits is None:
            bits = bytearray(need)
        if len(bits) < need:
            raise BitmapFormatError(
                f"bitmap truncated: {self.chunks} chunks need {need} bytes of bits after the "
                f"{SUPERBLOCK_SIZE}-byte superblock, found {len(bits)}"
            )
        self.bits = bytearray(bits[:need])

    # --- construction ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        sync_size_bytes: int,
        chunk_size: int,
        daemon_sleep: int = DEFAULT_DAEMON_SLEEP,
        uuid: bytes = bytes(16),
        write_behind: int = 0,
        all_dirty: bool = True,
    ) -> Bitmap:
        """A new version-4 bitmap; like mdadm ``CreateBitmap`` every bit is set by default."""
        check_chunk_size(chunk_size)
        if sync_size_bytes <= 0 or sync_size_bytes % SECTOR_SIZE:
            raise BitmapParameterError(
                f"sync size {sync_size_bytes} is not a positive multiple of {SECTOR_SIZE} bytes"
            )
        if not 1 <= daemon_sleep <= MAX_DAEMON_SLEEP:
            raise BitmapParameterError(
                f"daemon sleep {daemon_sleep} s out of range (1 - {MAX_DAEMON_SLEEP})"
            )
        if not 0 <= write_behind <= COUNTER_MAX:
            raise BitmapParameterError(
                f"write-behind limit {write_behind} out of range (0 - {COUNTER_MAX})"
            )
        chunks = bitmap_bits(sync_size_bytes // SECTOR_SIZE, chunk_size)
        if chunks > MAX_CHUNKS:
            smallest = chunk_size
            while bitmap_bits(sync_size_bytes // SECTOR_SIZE, smallest) > MAX_CHUNKS:
                smallest <<= 1
            advice = (
                f"use a chunk size of at least {smallest} bytes"
                if smallest <= MAX_CHUNK_SIZE
                else f"even {MAX_CHUNK_SIZE}-byte chunks are too few: the sync size is too large"
            )
            raise BitmapParameterError(
                f"{chunks} chunks of {chunk_size} bytes for a sync size of {sync_size_bytes} "
                f"bytes; at most {MAX_CHUNKS} are allowed (as mdadm): {advice}"
            )
        sb = BitmapSuperblock(
            uuid=uuid,
            sync_size=sync_size_bytes // SECTOR_SIZE,
            chunksize=chunk_size,
            daemon_sleep=daemon_sleep,
            write_behind=write_behind,
        )
        if not all_dirty:
            return cls(sb)
        # every chunk's bit set at once, the bits past the last chunk left clear
        bits = bytearray(b"\xff") * bits_bytes(chunks)
        if chunks % 8:
            bits[-1] = (1 << (chunks % 8)) - 1
        return cls(sb, bits)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Bitmap:
        """Decode a whole bitmap image (trailing bytes after the last chunk are ignored)."""
        sb = BitmapSuperblock.decode(data)
        view = memoryview(data).cast("B")
        return cls(sb, bytearray(view[SUPERBLOCK_SIZE : SUPERBLOCK_SIZE + bits_bytes(sb.chunks)]))

    def encode(self) -> bytes:
        """Superblock plus bits: ``storage_bytes`` bytes."""
        return self.superblock.encode() + bytes(self.bits)

    # --- bits -----------------------------------------------------------------------

    def _check_chunk(self, chunk: int) -> None:
        if not 0 <= chunk < self.chunks:
            raise BitmapParameterError(f"chunk {chunk} out of range 0..{self.chunks - 1}")

    def test(self, chunk: int) -> bool:
        """Is chunk ``chunk``'s bit set (``test_bit_le``)?"""
        self._check_chunk(chunk)
        return bool(self.bits[chunk >> 3] & (1 << (chunk & 7)))

    def set(self, chunk: int) -> bool:
        """Set the bit; return True if it was clear."""
        self._check_chunk(chunk)
        mask = 1 << (chunk & 7)
        was_clear = not self.bits[chunk >> 3] & mask
        self.bits[chunk >> 3] |= mask
        return was_clear

    def clear(self, chunk: int) -> bool:
        """Clear the bit; return True if it was set."""
        self._check_chunk(chunk)
        mask = 1 << (chunk & 7)
        was_set = bool(self.bits[chunk >> 3] & mask)
        self.bits[chunk >> 3] &= ~mask & 0xFF
        return was_set

    def dirty_chunks(self) -> Iterator[int]:
        """Indices of set bits, in order (only the first ``chunks`` bits count)."""
        for index, byte in enumerate(self.bits):
            if not byte:
                continue
            base = index << 3
            for bit in range(8):
                if byte & (1 << bit) and base + bit < self.chunks:
                    yield base + bit

    def count_dirty(self) -> int:
        """Number of set bits among the first ``chunks`` (mdadm ``count_dirty_bits``)."""
        full, rest = divmod(self.chunks, 8)
        total = int.from_bytes(self.bits[:full], "little").bit_count()
        if rest:
            total += (self.bits[full] & ((1 << rest) - 1)).bit_count()
        return total

    # --- geometry -------------------------------------------------------------------

    def chunk_byte_offset(self, chunk: int) -> int:
        """Byte offset of chunk ``chunk``'s bit in the bitmap image."""
        self._check_chunk(chunk)
        return SUPERBLOCK_SIZE + (chunk >> 3)

    def chunks_for_range(self, offset: int, length: int) -> range:
        """Chunks covering ``length`` bytes from ``offset`` of the sync range."""
        size = self.superblock.sync_size_bytes
        if offset < 0 or length <= 0 or offset + length > size:
            raise BitmapParameterError(
                f"byte range {offset}+{length} is not inside the sync range of {size} bytes"
            )
        chunk = self.superblock.chunksize
        return range(offset // chunk, (offset + length - 1) // chunk + 1)

    def page(self, page: int, page_size: int) -> bytes:
        """Page ``page`` of the image (superblock + bits) cut in ``page_size`` pieces, 0-padded."""
        if page == 0:
            data = self.superblock.encode() + bytes(self.bits[: page_size - SUPERBLOCK_SIZE])
        else:
            start = page * page_size - SUPERBLOCK_SIZE
            data = bytes(self.bits[start : start + page_size])
        return data + bytes(page_size - len(data))

    def image_pages(self, page_size: int) -> int:
        """Pages of ``page_size`` bytes the image occupies."""
        return -(-self.superblock.storage_bytes // page_size)

    def update(self, **changes: int) -> None:
        """Replace superblock fields (``events``, ``events_cleared``, ``state``, ...)."""
        self.superblock = replace(self.superblock, **changes)  # type: ignore[arg-type]
