"""The program's side: :class:`Mapping`, a writable buffer whose pages live in a swap area.

>>> import numpy as np
>>> with Mapping("file:///var/tmp/big.swap", resident=64 << 20) as m:   # doctest: +SKIP
...     a = np.frombuffer(m.buffer, dtype=np.float64)
...     a[::512] += 1.0
...     m.sync()

The program creates the memfd and its shared mapping, the userfaultfd (``userfaultfd(2)``,
``UFFDIO_API``, ``UFFDIO_REGISTER`` for missing and — when the kernel offers write-protect
on shmem — write-protect faults), hands both descriptors to the handler process and closes
its own copy of the userfaultfd: from then on only the handler (and its watchdog) can resolve
the region's faults.  See :mod:`swapio.mapping._handler` for the other side and
``docs/mapping.md`` for the design.
"""

from __future__ import annotations

import asyncio
import faulthandler
import mmap
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from swapio.area import DEFAULT_PAGE_SIZE
from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaNotFoundError,
    BackendIOError,
    SwapioError,
    UsageError,
)
from swapio.mapping import _region, _uffd
from swapio.mapping._abi import Feature, RegisterMode
from swapio.mapping._channel import Channel, Message
from swapio.mapping.errors import MappingError

#: Seconds to wait for the handler's reply to open/attach/stats.
DEFAULT_TIMEOUT = 60.0
#: Default eviction batch, in pages (``SWAP_CLUSTER_MAX``).
DEFAULT_BATCH = 32

_KINDS: dict[str, type[SwapioError]] = {
    "AreaNotFoundError": AreaNotFoundError,
    "AreaExistsError": AreaExistsError,
    "AreaError": AreaError,
    "BackendIOError": BackendIOError,
    "UsageError": UsageError,
    "LocationError": UsageError,
    "PageSizeError": UsageError,
}


def _raise(reply: Message, what: str) -> None:
    if reply.get("ok"):
        return
    kind = _KINDS.get(str(reply.get("kind")), MappingError)
    raise kind(f"{what}: {reply.get('error')}")


def write_protect_available() -> bool:
    """True when this kernel tracks writes to shmem with userfaultfd write-protect."""
    need = Feature.PAGEFAULT_FLAG_WP | Feature.WP_HUGETLBFS_SHMEM
    return _uffd.supported_features() & need == need


class Mapping:
    """A swap area as a writable buffer: ``m.buffer`` (``len`` = the area's size).

    :param url: the area's location (any swapio URL).
    :param resident: the most bytes of the region resident in this process at once.
    :param create: create a new area of this many pages instead of opening one.
    :param page_size: page size of a created area (default 4096).
    :param cache: bytes of the handler's swap cache (default: a quarter of ``resident``,
        at least 32 pages).
    :param batch: pages evicted together when the budget is reached.
    :param write_protect: track dirty pages with write-protect faults (default: when the
        kernel supports it).  Without it every evicted page is written back.
    :param colocate: run the handler's fault loop on the CPU this process runs on,
        following it: True always, False never, None (default) only when the loop does
        not poll (``poll``) and the machine's other CPUs are otherwise idle — a polling
        loop pinned next to the program takes its CPU; see ``docs/mapping.md``.
    :param poll: let the handler's loop poll for the next fault for a while (at most
        200 µs, adapted to the gaps between faults) before it sleeps: True always, False
        never, None (default) where there is a second CPU to poll on — waking a sleeping
        (in a VM: halted) CPU for each fault costs more than the fault; see
        ``docs/mapping.md``.
    :param timeout: seconds to wait for the handler's answers to set-up, sync and close.
    """

    def __init__(
        self,
        url: str,
        *,
        resident: int,
        create: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        cache: int | None = None,
        batch: int = DEFAULT_BATCH,
        write_protect: bool | None = None,
        colocate: bool | None = None,
        poll: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if isinstance(resident, bool) or not isinstance(resident, int) or resident <= 0:
            raise UsageError(f"resident must be a positive number of bytes, got {resident!r}")
        if create is not None and (not isinstance(create, int) or create <= 0):
            raise UsageError(f"create must be a positive number of pages, got {create!r}")
        self.url = url
        self.resident = resident
        self.create = create
        self.page_size = page_size
        self._cache = cache
        self.batch = batch
        self._want_wp = write_protect
        self.colocate = colocate
        self.poll = poll
        self.timeout = timeout
        self.write_protect = False
        self.durable = False
        self.pages = 0
        self.handler_pid = 0
        self.watchdog_pid = 0
        self.address = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._chan: Channel | None = None
        self._memfd = -1
        self._mm: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._closed = False

    # ------------------------------------------------------------------ open
    def open(self) -> Mapping:
        """Start the handler, activate the area, map and register the region."""
        if self._proc is not None:
            raise UsageError("the mapping is already open")
        if callable(signal.getsignal(signal.SIGBUS)):
            # after a Python-level handler returns, the faulting access runs again and faults
            # again, for ever: a lost handler process would hang the program, not stop it
            raise UsageError(
                "a Python SIGBUS handler is installed: an access after the mapping's handler "
                "died would re-fault for ever instead of stopping the program (a synchronous "
                "fault cannot be turned into a Python exception); remove the handler first"
            )
        features = _uffd.supported_features()  # raises UserfaultfdUnavailable with the cause
        wp_need = Feature.PAGEFAULT_FLAG_WP | Feature.WP_HUGETLBFS_SHMEM
        wp_ok = features & wp_need == wp_need
        if self._want_wp and not wp_ok:
            raise MappingError(
                "write-protect faults on shared memory are not available on this kernel "
                "(UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux >= 5.19)"
            )
        self.write_protect = wp_ok if self._want_wp is None else self._want_wp
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "swapio.mapping._handler", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._chan = Channel(ours)
        try:
            self._setup(features)
        except BaseException:
            self._teardown()
            raise
        return self

    def _setup(self, features: int) -> None:
        chan = self._chan
        assert chan is not None
        page_hint = self.page_size
        cache = self._cache if self._cache is not None else self.resident // 4
        reply = chan.request(
            {
                "op": "open",
                "url": self.url,
                "create": self.create,
                "page_size": self.page_size,
                "cache_pages": max(32, cache // page_hint),
                "pid": os.getpid(),
            },
            self.timeout,
        )
        _raise(reply, f"cannot open {self.url}")
        self.pages = int(reply["pages"])
        self.page_size = int(reply["page_size"])
        self.durable = bool(reply["durable"])
        budget = self.resident // self.page_size
        if budget < 1:
            raise UsageError(
                f"resident={self.resident} is less than one {self.page_size}-byte page"
            )
        size = self.pages * self.page_size
        self._memfd = _region.new_memfd(size)
        self._mm, self.address = _region.map_shared(self._memfd, size)
        self._mm.madvise(mmap.MADV_DONTFORK)  # a child must not touch pages nobody serves
        uffd = _uffd.create()
        try:
            want = Feature.MISSING_SHMEM
            mode = RegisterMode.MISSING
            if self.write_protect:
                want |= Feature.PAGEFAULT_FLAG_WP | Feature.WP_HUGETLBFS_SHMEM
                mode |= RegisterMode.WP
            _uffd.api(uffd, want & features)
            _uffd.register(uffd, self.address, size, mode)
            chan.send(
                {
                    "op": "attach",
                    "address": self.address,
                    "budget_pages": budget,
                    "batch_pages": self.batch,
                    "write_protect": self.write_protect,
                    "colocate": self.colocate,
                    "poll": self.poll,
                },
                fds=[self._memfd, uffd],
            )
        finally:
            os.close(uffd)  # only the handler may resolve faults from now on
        reply = chan.receive(self.timeout)
        _raise(reply, f"the handler could not attach to {self.url}")
        self.handler_pid = int(reply["handler_pid"])
        self.watchdog_pid = int(reply["watchdog_pid"])
        self._view = memoryview(self._mm)
        if not faulthandler.is_enabled():
            # an access after the handler died is a SIGBUS: print where, then die
            faulthandler.enable()

    # ------------------------------------------------------------------ use
    @property
    def buffer(self) -> memoryview:
        """The region: a writable, C-contiguous byte buffer of the area's size."""
        if self._view is None:
            raise UsageError("the mapping is not open" if not self._closed else "mapping closed")
        return self._view

    def __len__(self) -> int:
        return self.pages * self.page_size

    def _request(self, message: Message, what: str) -> Message:
        if self._chan is None:
            raise UsageError("the mapping is not open")
        reply = self._chan.request(message, self.timeout)
        _raise(reply, what)
        return reply

    def sync(self) -> int:
        """Make every page written so far durable on the area (on a durable area); returns
        the number of dirty pages written.  Raises what the area raised, if it failed."""
        return int(self._request({"op": "sync"}, f"sync of {self.url} failed")["pages"])

    def stats(self) -> dict[str, Any]:
        """The handler's counters and the region's resident size."""
        return self._request({"op": "stats"}, "stats")

    def region_rss(self) -> int:
        """Bytes of the region resident in this process now (``/proc/self/smaps``)."""
        return _region.region_rss(os.getpid(), self.address)

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Write every dirty page back, stop the handler and unmap the region.

        A buffer still exported (e.g. a live numpy array over ``m.buffer``) keeps the
        mapping; its file is then truncated so that a later access is a bus error rather
        than a silent zero page.
        """
        if self._closed or self._proc is None:
            return
        self._closed = True
        try:
            if self._chan is not None:
                reply = self._chan.request({"op": "close"}, self.timeout)
                _raise(reply, f"closing {self.url} failed")
        finally:
            self._teardown()

    def _teardown(self) -> None:
        self._closed = True
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                os.ftruncate(self._memfd, 0)
            self._mm = None
        if self._memfd >= 0:
            os.close(self._memfd)
            self._memfd = -1
        if self._chan is not None:
            self._chan.sock.close()
            self._chan = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Mapping:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Mapping:
        return await asyncio.to_thread(self.open)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    async def async_sync(self) -> int:
        """:meth:`sync` without blocking the event loop."""
        return await asyncio.to_thread(self.sync)
