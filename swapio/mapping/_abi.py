"""The userfaultfd ABI as pure data: ioctl numbers, flags and struct packing (no I/O).

Everything here follows ``include/uapi/linux/userfaultfd.h`` (Linux 6.x) and the
``_IOC`` encoding of ``include/uapi/asm-generic/ioctl.h`` (x86_64, arm64, riscv: 2 direction
bits, 14 size bits, 8 type bits, 8 number bits).  Structs are packed little-endian
``__u64``/``__s64`` fields exactly as declared; ``struct uffd_msg`` is ``__packed`` and 32
bytes long.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

#: ``UFFD_API``: the API version UFFDIO_API negotiates.
UFFD_API = 0xAA
#: ``UFFDIO``: the ioctl type byte of every userfaultfd ioctl.
UFFDIO = 0xAA
#: ``UFFD_USER_MODE_ONLY``: flag of userfaultfd(2) accepted without privilege.
UFFD_USER_MODE_ONLY = 1

_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    """``_IOC(dir, UFFDIO, nr, size)`` from ``asm-generic/ioctl.h``."""
    return (direction << 30) | (size << 16) | (UFFDIO << 8) | nr


#: ``struct uffdio_api { __u64 api; __u64 features; __u64 ioctls; }``
API_STRUCT = struct.Struct("<QQQ")
#: ``struct uffdio_range { __u64 start; __u64 len; }``
RANGE_STRUCT = struct.Struct("<QQ")
#: ``struct uffdio_register { struct uffdio_range range; __u64 mode; __u64 ioctls; }``
REGISTER_STRUCT = struct.Struct("<QQQQ")
#: ``struct uffdio_copy { __u64 dst; __u64 src; __u64 len; __u64 mode; __s64 copy; }``
COPY_STRUCT = struct.Struct("<QQQQq")
#: ``struct uffdio_zeropage { struct uffdio_range range; __u64 mode; __s64 zeropage; }``
ZEROPAGE_STRUCT = struct.Struct("<QQQq")
#: ``struct uffdio_writeprotect { struct uffdio_range range; __u64 mode; }``
WRITEPROTECT_STRUCT = struct.Struct("<QQQ")
#: ``struct uffd_msg`` (``__packed``): event, 7 reserved bytes, then the pagefault arm of the
#: union: ``__u64 flags; __u64 address; __u32 ptid`` and 4 bytes of padding.
MSG_STRUCT = struct.Struct("<B7xQQI4x")
MSG_SIZE = MSG_STRUCT.size

# ioctl request numbers (``_IOWR``/``_IOR`` lines of userfaultfd.h)
UFFDIO_REGISTER = _ioc(_IOC_READ | _IOC_WRITE, 0x00, REGISTER_STRUCT.size)
UFFDIO_UNREGISTER = _ioc(_IOC_READ, 0x01, RANGE_STRUCT.size)
UFFDIO_WAKE = _ioc(_IOC_READ, 0x02, RANGE_STRUCT.size)
UFFDIO_COPY = _ioc(_IOC_READ | _IOC_WRITE, 0x03, COPY_STRUCT.size)
UFFDIO_ZEROPAGE = _ioc(_IOC_READ | _IOC_WRITE, 0x04, ZEROPAGE_STRUCT.size)
UFFDIO_WRITEPROTECT = _ioc(_IOC_READ | _IOC_WRITE, 0x06, WRITEPROTECT_STRUCT.size)
UFFDIO_API = _ioc(_IOC_READ | _IOC_WRITE, 0x3F, API_STRUCT.size)
#: ``USERFAULTFD_IOC_NEW`` = ``_IO(USERFAULTFD_IOC, 0x00)`` on ``/dev/userfaultfd``.
USERFAULTFD_IOC_NEW = (UFFDIO << 8) | 0x00


class Feature(enum.IntFlag):
    """``UFFD_FEATURE_*`` bits of ``uffdio_api.features``."""

    PAGEFAULT_FLAG_WP = 1 << 0
    EVENT_FORK = 1 << 1
    EVENT_REMAP = 1 << 2
    EVENT_REMOVE = 1 << 3
    MISSING_HUGETLBFS = 1 << 4
    MISSING_SHMEM = 1 << 5
    EVENT_UNMAP = 1 << 6
    SIGBUS = 1 << 7
    THREAD_ID = 1 << 8
    MINOR_HUGETLBFS = 1 << 9
    MINOR_SHMEM = 1 << 10
    EXACT_ADDRESS = 1 << 11
    WP_HUGETLBFS_SHMEM = 1 << 12
    WP_UNPOPULATED = 1 << 13


class RegisterMode(enum.IntFlag):
    """``UFFDIO_REGISTER_MODE_*``."""

    MISSING = 1 << 0
    WP = 1 << 1
    MINOR = 1 << 2


class CopyMode(enum.IntFlag):
    """``UFFDIO_COPY_MODE_*``."""

    NONE = 0
    DONTWAKE = 1 << 0
    WP = 1 << 1


class ZeropageMode(enum.IntFlag):
    """``UFFDIO_ZEROPAGE_MODE_*``."""

    NONE = 0
    DONTWAKE = 1 << 0


class WriteprotectMode(enum.IntFlag):
    """``UFFDIO_WRITEPROTECT_MODE_*``."""

    NONE = 0
    WP = 1 << 0
    DONTWAKE = 1 << 1


class Event(enum.IntEnum):
    """``UFFD_EVENT_*`` values of ``uffd_msg.event``."""

    PAGEFAULT = 0x12
    FORK = 0x13
    REMAP = 0x14
    REMOVE = 0x15
    UNMAP = 0x16


class PagefaultFlag(enum.IntFlag):
    """``UFFD_PAGEFAULT_FLAG_*`` of ``uffd_msg.arg.pagefault.flags``."""

    NONE = 0
    WRITE = 1 << 0
    WP = 1 << 1
    MINOR = 1 << 2


@dataclass(frozen=True, slots=True)
class Pagefault:
    """One ``UFFD_EVENT_PAGEFAULT`` message."""

    address: int
    flags: PagefaultFlag
    ptid: int

    @property
    def write(self) -> bool:
        """The faulting access was a write."""
        return bool(self.flags & PagefaultFlag.WRITE)

    @property
    def write_protect(self) -> bool:
        """A write hit a write-protected page (not a missing page)."""
        return bool(self.flags & PagefaultFlag.WP)


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A non-pagefault message (fork, remap, remove, unmap): we register for none."""

    event: int


def pack_api(features: int) -> bytes:
    """``struct uffdio_api`` asking for ``features``."""
    return API_STRUCT.pack(UFFD_API, features, 0)


def unpack_api(data: bytes) -> tuple[int, int, int]:
    """``(api, features, ioctls)`` as the kernel filled them in."""
    api, features, ioctls = API_STRUCT.unpack(data)
    return api, features, ioctls


def pack_register(start: int, length: int, mode: int) -> bytes:
    """``struct uffdio_register`` for ``[start, start + length)``."""
    return REGISTER_STRUCT.pack(start, length, mode, 0)


def unpack_register_ioctls(data: bytes) -> int:
    """The ``ioctls`` bitmask UFFDIO_REGISTER returned (which UFFDIO_* the range allows)."""
    return int(REGISTER_STRUCT.unpack(data)[3])


def pack_range(start: int, length: int) -> bytes:
    """``struct uffdio_range``."""
    return RANGE_STRUCT.pack(start, length)


def pack_copy(dst: int, src: int, length: int, mode: int) -> bytes:
    """``struct uffdio_copy``: copy ``length`` bytes at ``src`` (ours) to ``dst`` (theirs)."""
    return COPY_STRUCT.pack(dst, src, length, mode, 0)


def unpack_copy_result(data: bytes) -> int:
    """``uffdio_copy.copy``: bytes copied, or a negative errno."""
    return int(COPY_STRUCT.unpack(data)[4])


def pack_zeropage(start: int, length: int, mode: int) -> bytes:
    """``struct uffdio_zeropage``."""
    return ZEROPAGE_STRUCT.pack(start, length, mode, 0)


def pack_writeprotect(start: int, length: int, mode: int) -> bytes:
    """``struct uffdio_writeprotect``: ``mode`` WP protects, 0 un-protects (and wakes)."""
    return WRITEPROTECT_STRUCT.pack(start, length, mode)


def decode_messages(data: bytes) -> list[Pagefault | OtherEvent]:
    """Decode whole ``struct uffd_msg`` records (``len(data)`` must be a multiple of 32)."""
    if len(data) % MSG_SIZE:
        raise ValueError(f"{len(data)} bytes is not a whole number of {MSG_SIZE}-byte uffd_msg")
    out: list[Pagefault | OtherEvent] = []
    for event, flags, address, ptid in MSG_STRUCT.iter_unpack(data):
        if event == Event.PAGEFAULT:
            out.append(Pagefault(address, PagefaultFlag(flags), ptid))
        else:
            out.append(OtherEvent(event))
    return out


def iter_pagefaults(data: bytes | memoryview) -> list[tuple[int, int]]:
    """``(address, flags)`` of each ``UFFD_EVENT_PAGEFAULT`` record in ``data`` (whole
    32-byte ``struct uffd_msg`` records; other events — we register for none — are skipped).
    The fault path's decoder: plain tuples, no objects per message."""
    if len(data) % MSG_SIZE:
        raise ValueError(f"{len(data)} bytes is not a whole number of {MSG_SIZE}-byte uffd_msg")
    pagefault = int(Event.PAGEFAULT)
    return [
        (address, flags)
        for event, flags, address, _ptid in MSG_STRUCT.iter_unpack(data)
        if event == pagefault
    ]
