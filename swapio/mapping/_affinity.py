"""Keeps the handler on the CPU its program runs on (the fault path is a synchronous RPC).

A fault is a round trip: the program's thread sleeps in the kernel, the handler wakes, copies
the page in and wakes the thread.  On two CPUs each wake-up of a sleeping CPU is an
inter-processor interrupt; in a virtual machine whose idle vCPUs halt (Firecracker, a
``haltpoll`` guest with ``guest_halt_poll_ns=0``) every such IPI is a VM exit and a host
reschedule — measured here, a bare one-``UFFDIO_COPY`` handler served 10,000–15,000 random
faults/s from the other vCPU and 62,000–84,000/s from the program's own.  So the handler pins
itself (every thread: the loop and the reaper) to the CPU the program last ran on; the
kernel's wake-affine placement then keeps the program there (the handler wakes it from that
CPU).  If the program moves (the load balancer, its own affinity), :class:`Follower` moves
the handler after it saw the program elsewhere on two checks in a row.

The CPU a task last ran on is field 39 (``processor``) of ``/proc/PID/stat``
(``proc_pid_stat``, ``fs/proc/array.c``).
"""

from __future__ import annotations

import asyncio
import os

#: Seconds between two looks at the program's CPU.
FOLLOW_INTERVAL = 0.25
#: Consecutive looks that must find the program elsewhere before the handler moves.
FOLLOW_AFTER = 2


def parse_processor(stat: str) -> int:
    """The ``processor`` field of a ``/proc/PID/stat`` line (the command name may hold spaces
    and parentheses: the fields after the last ``)`` start at field 3, ``state``)."""
    return int(stat.rsplit(")", 1)[1].split()[36])


def last_cpu(pid: int) -> int | None:
    """The CPU task ``pid`` last ran on, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return parse_processor(fh.read())
    except (OSError, IndexError, ValueError):
        return None


def pin_thread(cpu: int) -> bool:
    """Pin the calling thread to ``cpu``; False if the kernel refused (a cpuset without it).
    Threads it creates later inherit the mask."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


class Follower:
    """Pins the calling thread (the handler's loop) to the program's CPU now and follows
    it (see the module).  Create it, and call every method, in the loop's thread."""

    def __init__(self, program_pid: int, *, interval: float = FOLLOW_INTERVAL) -> None:
        self.program_pid = program_pid
        self.interval = interval
        self.cpu: int | None = None
        self.moves = 0
        self._elsewhere = 0
        self._timer: asyncio.TimerHandle | None = None

    def pin(self) -> None:
        """Pin to the program's CPU now (no-op if it cannot be read or used)."""
        cpu = last_cpu(self.program_pid)
        if cpu is not None and cpu != self.cpu and pin_thread(cpu):
            self.cpu = cpu
            self.moves += 1

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Pin now, then look again every ``interval`` seconds."""
        self.pin()
        self._timer = loop.call_later(self.interval, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        cpu = last_cpu(self.program_pid)
        if cpu is None or cpu == self.cpu:
            self._elsewhere = 0
        else:
            self._elsewhere += 1
            if self._elsewhere >= FOLLOW_AFTER:
                self._elsewhere = 0
                self.pin()
        self._timer = loop.call_later(self.interval, self._check, loop)

    def stop(self) -> None:
        """Stop following (the handler stays where it is)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
