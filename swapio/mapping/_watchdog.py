"""The watchdog: turns the handler's death into bus errors in the program, never a hang.

If the handler process dies while the program still holds a registered region, the kernel
would release the userfaultfd (the region silently becomes ordinary memory: missing pages
read as zeros) — or, while another copy of the descriptor is open, leave faulting threads
blocked forever.  The watchdog is a small process forked by the handler that holds a copy of
the userfaultfd and the memfd, and the read end of a pipe only the handler can write.  EOF on
that pipe without the handler's "clean exit" byte means the handler died: the watchdog
truncates the memfd to zero bytes and wakes every faulting thread (``UFFDIO_WAKE``), so each
access to the region — now beyond the end of its file — raises ``SIGBUS`` in the program
(``shmem_get_folio_gfp`` refuses indexes past ``i_size``), then exits, releasing the
userfaultfd.  Nothing is served from a dead handler.
"""

from __future__ import annotations

import contextlib
import os
import signal

from swapio.mapping import _uffd

_CLEAN = b"c"


def start(uffd: int, memfd: int, base: int, size: int) -> tuple[int, int]:
    """Fork the watchdog; returns ``(pid, pipe write end)`` — keep the pipe open until exit."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the watchdog: only plain syscalls from here, then _exit
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            keep = {r, uffd, memfd}
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd > 2 and fd not in keep:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            data = os.read(r, 1)
            if data != _CLEAN:
                os.ftruncate(memfd, 0)
                _uffd.wake(uffd, base, size)
        finally:
            os._exit(0)
    os.close(r)
    return pid, w


def stand_down(pid: int, pipe: int) -> None:
    """The handler exits cleanly: the watchdog leaves the region alone and exits."""
    try:
        os.write(pipe, _CLEAN)
    finally:
        os.close(pipe)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
