"""The mapped region: a memfd, its shared mapping, hole punching and resident-size reading.

The program's buffer is a ``MAP_SHARED`` mapping of a ``memfd_create(2)`` file, registered
with userfaultfd (shmem supports MISSING faults and, with ``UFFD_FEATURE_WP_HUGETLBFS_SHMEM``,
write-protect faults).  Sharing the file lets the handler process read a page's current bytes
(``pread`` of the memfd: a hole reads as zeros without allocating) and drop pages from the
program by punching holes in it, which unmaps them from every mapping — the ``MADV_REMOVE``
route UMap takes for memfd-backed buffers.

:class:`HolePuncher` punches a batch of runs with **one** system call where the kernel
allows it: ``process_madvise(2)`` with ``MADV_REMOVE`` over an iovec of the runs, on the
handler's *own* shared mapping of the memfd (``madvise_remove`` in ``mm/madvise.c`` is a
``vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`` of the range, the same punch).
Since Linux 6.13 ``process_madvise`` accepts any advice for the calling process; before, only
advisory advice (COLD, PAGEOUT, WILLNEED, COLLAPSE), and it fails with ``EINVAL`` — then,
and on any other refusal, the puncher falls back to one ``fallocate`` per run for good.  One
call matters because the punch runs on the handler's reaper thread: every ``ctypes`` call
gives up the GIL and must win it back from the loop thread serving faults, so a batch of
scattered runs punched one ``fallocate`` at a time took 45 µs a run while faults were being
served, one ``process_madvise`` ~10 µs a run (docs/mapping.md, "Fifth session").
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

#: ``FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE`` (``include/uapi/linux/falloc.h``).
_PUNCH_HOLE = 0x01 | 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
#: The C library (``fallocate``, ``prctl``).
libc = _libc
#: ``__NR_process_madvise`` (one number in every table since 5.10: ``arch/*/syscall*.tbl``).
_NR_PROCESS_MADVISE = 440
#: ``MADV_REMOVE`` (``include/uapi/asm-generic/mman-common.h``).
MADV_REMOVE = 9
#: Most iovecs one ``process_madvise`` call takes (``UIO_MAXIOV``).
MAX_RUNS_PER_CALL = 1024
#: errno values meaning "this kernel will not do it": fall back to ``fallocate``.
_NOT_HERE = {errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EOPNOTSUPP}


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


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


class HolePuncher:
    """Punches runs ``(offset, length)`` out of the memfd ``fd`` of ``size`` bytes (see the
    module): one ``process_madvise(MADV_REMOVE)`` per :data:`MAX_RUNS_PER_CALL` runs, or one
    ``fallocate`` per run where the kernel refuses that (``batched`` turns False, for good).

    ``calls`` counts the system calls made.  Not thread-safe: one reaper thread uses it.
    """

    def __init__(self, fd: int, size: int, *, batched: bool = True) -> None:
        self.fd = fd
        self.calls = 0
        self.batched = False
        self._pidfd = -1
        self._mm: mmap.mmap | None = None
        self._base = 0
        if batched and hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(os.getpid())
                self._mm, self._base = map_shared(fd, size)
            except OSError:
                self.close()
            else:
                self.batched = True

    def punch(self, holes: list[tuple[int, int]]) -> None:
        """Punch every run of ``holes``; raises :class:`OSError` naming the call that failed."""
        i = 0
        while self.batched and i < len(holes):
            chunk = holes[i : i + MAX_RUNS_PER_CALL]
            vec = (_Iovec * len(chunk))(*[_Iovec(self._base + off, n) for off, n in chunk])
            self.calls += 1
            done = int(
                _libc.syscall(
                    ctypes.c_long(_NR_PROCESS_MADVISE),
                    ctypes.c_int(self._pidfd),
                    vec,
                    ctypes.c_size_t(len(chunk)),
                    ctypes.c_int(MADV_REMOVE),
                    ctypes.c_uint(0),
                )
            )
            if done < 0:
                err = ctypes.get_errno()
                if err not in _NOT_HERE:
                    raise OSError(err, f"process_madvise(MADV_REMOVE): {os.strerror(err)}")
                self.batched = False  # this kernel: one fallocate per run from now on
                break
            # a short count covers whole runs first; what it did not reach goes below
            k = 0
            while k < len(chunk) and done >= chunk[k][1]:
                done -= chunk[k][1]
                k += 1
            i += k
            if k < len(chunk):
                break
        for offset, length in holes[i:]:
            self.calls += 1
            punch_hole(self.fd, offset, length)

    def close(self) -> None:
        """Release the pidfd and the mapping."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        self.batched = False


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
