"""When a batch of swap-outs runs on the event loop instead of the log's owner thread.

Handing a batch to the owner thread costs two thread wake-ups, and on a loaded machine each
waits for the scheduler; the work itself holds the GIL almost throughout (the log is Python,
its only system calls are page-cache ``pwritev``/``pread``), so the loop gains little from
the thread while the batch runs.  So, like the file backend's requests
(``swapio_file.inline``), a batch runs on the loop itself, under these rules:

* only while the owner thread is idle (nothing queued, running or unsettled), checked when
  the batch starts, so the loop and the thread never use the log at once, and requests keep
  their order;
* at most :data:`INLINE_MAX_PAGES` pages (one largest request): bounded time on the loop,
  foreground garbage collection included (a batch needs at most a few blocks);
* never with ``sync=1`` (``fdatasync`` waits for the disk);
* a batch that slept in the kernel (a voluntary context switch, ``getrusage`` ``ru_nvcsw``:
  dirty-page throttling, direct reclaim) for longer than :data:`STALL_S` — wall time less
  the thread's CPU time — stops inline batches for a back-off that doubles with each such
  stall, from :data:`FIRST_BACKOFF_S` up to :data:`MAX_BACKOFF_S`.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

from swapio.owner import OwnerThread

#: Largest batch run on the loop: one request of the most pages a request may carry.
INLINE_MAX_PAGES = 64
#: Time an inline batch may spend asleep in the kernel before inline batches back off.
STALL_S = 0.001
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 64.0


def _slept() -> int:
    """Voluntary context switches of this thread so far (it blocked in the kernel)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class InlineRule:
    """Decides whether a batch runs on the loop; runs it there, watching for stalls."""

    def __init__(
        self,
        owner: OwnerThread,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        slept: Callable[[], int] = _slept,
    ) -> None:
        self._owner = owner
        self._enabled = enabled
        self._clock = clock
        self._slept = slept
        self._resume_at = 0.0
        self._backoff = FIRST_BACKOFF_S
        #: inline batches that slept longer than STALL_S (each began a back-off)
        self.stalls = 0
        #: batches run on the loop
        self.batches = 0

    def allows(self, pages: int) -> bool:
        """May a batch of ``pages`` pages run on the loop now?"""
        return (
            self._enabled
            and pages <= INLINE_MAX_PAGES
            and self._owner.idle
            and self._clock() >= self._resume_at
        )

    def run(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the loop (the caller checked :meth:`allows`); a stall begins a
        back-off.  Exceptions propagate."""
        self.batches += 1
        slept = self._slept()
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            work()
        finally:
            asleep = (time.perf_counter() - start) - (time.thread_time() - cpu)
            if asleep > STALL_S and self._slept() > slept:
                self.stalls += 1
                self._resume_at = self._clock() + asleep + self._backoff
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
