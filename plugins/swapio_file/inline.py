"""Small requests on the event loop itself, when they cannot (or did not) block it.

At one request in flight, handing a request to the owner thread costs two thread wake-ups
(~20 µs on the 2-core VM), as much as the 256 KiB ``pwritev`` it carries.  So a request may
run on the loop instead, under these rules (docs/file-backend.md, "I/O"):

* only when the owner thread is idle (nothing queued or running: the loop never contends
  with it for the inode lock, and requests keep their order), and at most
  :data:`INLINE_MAX_BYTES` (bounded time on the loop, like any CPU work a coroutine does);
* a read uses ``preadv2(RWF_NOWAIT)`` (Linux ≥ 4.14): the kernel returns ``EAGAIN`` instead
  of waiting for the disk, and the request goes to the owner thread;
* a write tries ``pwritev2(RWF_NOWAIT)`` first, which never waits for dirty-page throttling
  or a lock where the filesystem supports it (XFS and btrfs since Linux 6.0); where it does
  not (``EOPNOTSUPP``: ext4 and tmpfs on Linux 6.18) a plain ``pwritev`` runs on the loop,
  guarded: one that slept in the kernel (a voluntary context switch, ``getrusage``
  ``ru_nvcsw``: dirty-page throttling, direct reclaim, a lock) and took longer than
  :data:`STALL_S` stops inline writes on this area for a back-off that doubles with each
  such stall, from :data:`FIRST_BACKOFF_S` up to :data:`MAX_BACKOFF_S`.  Being preempted
  for the CPU (an involuntary switch) is not a stall: any code on the loop suffers it alike;
* never for a ``durable`` area (``fdatasync`` waits for the disk), a block device, a
  read-only store or a discard.
"""

from __future__ import annotations

import errno
import os
import resource
import time
from collections.abc import Callable, Sequence

from swapio.area import PageBuffer
from swapio.errors import BackendIOError
from swapio.owner import OwnerThread
from swapio_file.store import FileStore

#: Largest request run on the loop: 64 pages of 4 KiB, ~20 µs of copying.
INLINE_MAX_BYTES = 256 * 1024
#: An inline write that slept in the kernel longer than this blocked the loop: back off.
STALL_S = 0.001
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 64.0

_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def _slept() -> int:
    """Voluntary context switches of this thread so far (it blocked in the kernel)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class InlinePath:
    """Decides, per request, whether it runs on the loop; runs it if so."""

    def __init__(
        self,
        store: FileStore,
        owner: OwnerThread,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._owner = owner
        self._clock = clock
        self._writes = not (store.durable or store.block_device or store.read_only)
        self._nowait_write = bool(_NOWAIT)
        self._nowait_read = bool(_NOWAIT)
        self._resume_at = 0.0
        self._backoff = FIRST_BACKOFF_S
        #: inline writes that slept in the kernel longer than STALL_S (each began a back-off)
        self.stalls = 0
        #: the longest of them, in seconds (the event loop was blocked that long)
        self.worst_stall_s = 0.0

    def _eligible(self, count: int) -> bool:
        return count * self._store.page_size <= INLINE_MAX_BYTES and self._owner.idle

    def write(self, offset: int, pages: Sequence[PageBuffer]) -> bool:
        """Write ``pages`` at ``offset`` on the loop if the rules allow; ``False``: not done
        (or only partly: the caller hands the whole request to the owner thread)."""
        if not self._writes or not self._eligible(len(pages)):
            return False
        if self._nowait_write:
            total = len(pages) * self._store.page_size
            try:
                return os.pwritev(self._store.fd, pages, offset, _NOWAIT) == total
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise BackendIOError(
                        f"{self._store.path}: write at byte {offset} failed: {exc}"
                    ) from exc
                self._nowait_write = False  # this filesystem cannot: guarded writes below
        now = self._clock()
        if now < self._resume_at:
            return False
        slept = _slept()
        start = time.perf_counter()
        self._store.pwritev(offset, pages)
        took = time.perf_counter() - start
        if took > STALL_S and _slept() > slept:
            self.stalls += 1
            self.worst_stall_s = max(self.worst_stall_s, took)
            self._resume_at = now + took + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        return True

    def read(self, offset: int, views: Sequence[memoryview]) -> bool:
        """Fill ``views`` on the loop if every byte is in the page cache; ``False``: hand
        the request to the owner thread (it reports short reads and errors)."""
        if not self._nowait_read or not self._eligible(len(views)):
            return False
        total = len(views) * self._store.page_size
        try:
            return os.preadv(self._store.fd, views, offset, _NOWAIT) == total
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                self._nowait_read = False
            return False  # the owner thread retries it and reports a real error
