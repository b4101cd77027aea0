"""The mapped region: a memfd, its shared mapping, hole punching and resident-size reading.

The program's buffer is a ``MAP_SHARED`` mapping of a ``memfd_create(2)`` file, registered
with userfaultfd (shmem supports MISSING faults and, with ``UFFD_FEATURE_WP_HUGETLBFS_SHMEM``,
write-protect faults).  Sharing the file lets the handler process read a page's current bytes
(``pread`` of the memfd: a hole reads as zeros without allocating) and drop pages from the
program with ``fallocate(FALLOC_FL_PUNCH_HOLE)``, which unmaps them from every mapping — the
``MADV_REMOVE`` route UMap takes for memfd-backed buffers.  ``process_madvise(2)`` cannot do
this: it accepts only advisory advice (COLD, PAGEOUT, WILLNEED, COLLAPSE), not DONTNEED.
"""

from __future__ import annotations

import ctypes
import mmap
import os

#: ``FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE`` (``include/uapi/linux/falloc.h``).
_PUNCH_HOLE = 0x01 | 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
#: The C library (``fallocate``, ``prctl``).
libc = _libc


def new_memfd(size: int, name: str = "swapio-mapping") -> int:
    """A close-on-exec memfd of ``size`` bytes (all holes)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def map_shared(fd: int, size: int) -> tuple[mmap.mmap, int]:
    """Map ``fd`` shared, read-write; returns the mapping and its address."""
    mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    anchor = ctypes.c_char.from_buffer(mm)
    address = ctypes.addressof(anchor)
    del anchor  # release the buffer export so the mapping can be closed later
    return mm, address


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Drop ``[offset, offset + length)`` of the memfd: its pages leave every mapping."""
    if _libc.fallocate(fd, _PUNCH_HOLE, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fallocate(PUNCH_HOLE): {os.strerror(err)}")


def region_rss(pid: int, address: int) -> int:
    """Resident bytes of the mapping that starts at ``address`` in process ``pid`` (the
    ``Rss:`` line of its VMA in ``/proc/PID/smaps``); 0 if no such VMA."""
    head = f"{address:x}-"
    found = False
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if not found:
                if line.startswith(head):
                    found = True
                continue
            if line.startswith("Rss:"):
                return int(line.split()[1]) * 1024
    return 0
