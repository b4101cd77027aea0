"""Keeps the handler on the CPU its program runs on while the other CPUs are idle.

A fault is a round trip: the program's thread sleeps in the kernel, the handler wakes, copies
the page in and wakes the thread.  On two CPUs each wake-up of a sleeping CPU is an
inter-processor interrupt; in a virtual machine whose idle vCPUs halt (Firecracker, a
``haltpoll`` guest with ``guest_halt_poll_ns=0``) every such IPI is a VM exit and a host
reschedule — measured here on a quiet machine, a bare one-``UFFDIO_COPY`` handler served
10,000–15,000 random faults/s from the other vCPU and 62,000–84,000/s from the program's.
So the handler pins its loop thread to the CPU the program last ran on; the kernel's
wake-affine placement then keeps the program there (the handler wakes it from that CPU).
If the program moves (the load balancer, its own affinity), :class:`Follower` moves the loop
after it saw the program elsewhere on two looks in a row.

When *other* work keeps the other CPUs busy, the trade turns: their CPUs do not halt, so a
wake-up there is cheap, and a pinned pair queues behind whatever shares its CPU (measured at
load 2.2: 19,300 faults/s unpinned against 13,700 pinned).  In ``auto`` mode the follower
therefore looks, every :data:`FOLLOW_INTERVAL`, at how busy the machine was *without* the
handler and its program (``/proc/stat`` minus both processes' CPU time) and pins only while
that is under :data:`BUSY_PIN` of the machine (unpinning above :data:`BUSY_UNPIN`); before
its first look, it goes by the 1-minute load average less the program.

The CPU a task last ran on is field 39 (``processor``) of ``/proc/PID/stat``, its CPU time
fields 14–15 (``utime``, ``stime``, ``proc_pid_stat``, ``fs/proc/array.c``); the machine's
is the ``cpu`` line of ``/proc/stat`` (``fs/proc/stat.c``).
"""

from __future__ import annotations

import asyncio
import os
import resource

#: Seconds between two looks at the program's CPU.
FOLLOW_INTERVAL = 0.25
#: Consecutive looks that must find the program elsewhere before the handler moves.
FOLLOW_AFTER = 2
#: ``auto``: pin while other work used less than this share of the machine's CPUs ...
BUSY_PIN = 0.25
#: ... and unpin once it used more than this (hysteresis).
BUSY_UNPIN = 0.4
_TICK = os.sysconf("SC_CLK_TCK")


def parse_processor(stat: str) -> int:
    """The ``processor`` field of a ``/proc/PID/stat`` line (the command name may hold spaces
    and parentheses: the fields after the last ``)`` start at field 3, ``state``)."""
    return int(stat.rsplit(")", 1)[1].split()[36])


def parse_cpu_time(stat: str) -> int:
    """``utime + stime`` (clock ticks) of a ``/proc/PID/stat`` line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def parse_machine(stat: str) -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs from ``/proc/stat``'s ``cpu`` line (idle
    and iowait are not busy; guest time is already counted in user)."""
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - fields[4], total


def others_busy(
    machine: tuple[int, int], before: tuple[int, int], ours: int, ours_before: int
) -> float | None:
    """Share of the machine's CPU capacity that work other than ``ours`` (ticks of the
    handler and its program) used between two samples; None without elapsed time."""
    total = machine[1] - before[1]
    if total <= 0:
        return None
    busy = machine[0] - before[0] - (ours - ours_before)
    return min(max(busy / total, 0.0), 1.0)


def want_pinned(pinned: bool, share: float | None) -> bool:
    """``auto``: pin while others used under :data:`BUSY_PIN` of the machine, stay pinned up
    to :data:`BUSY_UNPIN`; without a measure, keep the current state."""
    if share is None:
        return pinned
    return share <= BUSY_UNPIN if pinned else share < BUSY_PIN


def start_pinned(load1: float, cpus: int) -> bool:
    """``auto`` before the first look: pin unless the 1-minute load average, less the program
    itself, already says others keep over :data:`BUSY_UNPIN` of the CPUs busy."""
    return max(0.0, load1 - 1.0) <= BUSY_UNPIN * cpus


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


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
    """Pins the calling thread (the handler's loop) to the program's CPU and follows it;
    ``auto`` only while the machine is otherwise idle (see the module).  Create it, and
    call every method, in the loop's thread."""

    def __init__(
        self, program_pid: int, *, auto: bool = True, interval: float = FOLLOW_INTERVAL
    ) -> None:
        self.program_pid = program_pid
        self.auto = auto
        self.interval = interval
        self.cpu: int | None = None  # pinned to, or None (floating)
        self.moves = 0
        self.unpins = 0
        self._free = os.sched_getaffinity(0)  # where the loop may run when not pinned
        self._elsewhere = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sample: tuple[tuple[int, int], int] | None = None

    def pin(self) -> None:
        """Pin to the program's CPU now (no-op if it cannot be read or used)."""
        cpu = last_cpu(self.program_pid)
        if cpu is not None and cpu != self.cpu and pin_thread(cpu):
            self.cpu = cpu
            self.moves += 1

    def unpin(self) -> None:
        """Let the loop run on any CPU it could before pinning."""
        if self.cpu is None:
            return
        try:
            os.sched_setaffinity(0, self._free)
        except OSError:
            return
        self.cpu = None
        self.unpins += 1

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Pin now (``auto``: unless the load average says the machine is busy), then look
        again every ``interval`` seconds."""
        if not self.auto or start_pinned(os.getloadavg()[0], os.cpu_count() or 1):
            self.pin()
        self._sample = self._measure()
        self._timer = loop.call_later(self.interval, self._check, loop)

    def _measure(self) -> tuple[tuple[int, int], int] | None:
        """The machine's ``(busy, total)`` ticks and the ticks of the handler and program."""
        if not self.auto:
            return None
        machine = _read("/proc/stat")
        program = _read(f"/proc/{self.program_pid}/stat")
        if machine is None or program is None:
            return None
        try:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            ours = round((usage.ru_utime + usage.ru_stime) * _TICK) + parse_cpu_time(program)
            return parse_machine(machine), ours
        except (IndexError, ValueError):
            return None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self.interval, self._check, loop)
        if self.auto:
            sample, before = self._measure(), self._sample
            self._sample = sample
            share = (
                None
                if sample is None or before is None
                else others_busy(sample[0], before[0], sample[1], before[1])
            )
            pinned = self.cpu is not None
            if want_pinned(pinned, share) != pinned:
                if pinned:
                    self.unpin()
                else:
                    self.pin()
            if self.cpu is None:
                return
        cpu = last_cpu(self.program_pid)
        if cpu is None or cpu == self.cpu:
            self._elsewhere = 0
        else:
            self._elsewhere += 1
            if self._elsewhere >= FOLLOW_AFTER:
                self._elsewhere = 0
                self.pin()

    def stop(self) -> None:
        """Stop following (the handler stays where it is)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
