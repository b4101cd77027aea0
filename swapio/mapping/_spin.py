"""Adaptive busy-polling for the handler's event loop: a fault's wake-up without a sleeping CPU.

A fault is a round trip: the program's thread sleeps in the kernel until the handler has
copied the page in.  When the handler's loop is blocked in ``epoll_wait`` its CPU goes idle;
in a virtual machine an idle vCPU halts, and waking it for the next fault is an interrupt to
a halted vCPU — a VM exit and a host reschedule, tens of microseconds.  Measured on this
project's 2-vCPU VM (docs/mapping.md, "Fifth session"): a bare one-``UFFDIO_COPY`` handler
served ~15,000 random faults/s blocking in ``read`` and ~49,000/s polling the descriptor
without blocking.  The kernel solves the same problem for its own guests with *halt
polling* (``virt/kvm/kvm_main.c``, ``kvm_vcpu_halt``: poll for up to ``halt_poll_ns`` before
halting, growing the window when polling caught the event and shrinking it when the wait
was longer than the maximum) and for sockets with ``SO_BUSY_POLL``.

:class:`SpinPolicy` is that window rule, sans I/O; :class:`SpinSelector` is an epoll
selector that, asked to block, first polls with a zero timeout for the current window
(counted from the start of the wait) and only then blocks.  Faults come in bursts (a scan,
a working set being touched), so the window is long while they do and collapses to zero
when the program computes between faults: an idle handler sleeps after at most one window.

The cost is CPU: up to one window of polling per gap between faults.  It is worth paying
only where another CPU is there to poll on; :func:`default_window` turns polling off on a
one-CPU machine.
"""

from __future__ import annotations

import os
import selectors
import time

#: Longest poll before blocking (seconds): KVM's default ``halt_poll_ns`` is 200 µs.
MAX_WINDOW = 200e-6
#: The window a successful poll grows from, and below which a shrinking window stops
#: polling (KVM's ``halt_poll_ns_grow_start``: 10 µs).
START_WINDOW = 10e-6


def default_window() -> float:
    """:data:`MAX_WINDOW`, or 0 (never poll) where there is no second CPU to poll on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return MAX_WINDOW if (cpus or 1) > 1 else 0.0


class SpinPolicy:
    """The polling window, adapted to how long waits turn out to be (KVM's grow/shrink).

    ``window`` is how long the next wait polls before blocking.  After each wait,
    :meth:`observed` gets how long it took until something was ready:

    * ready while polling: the window was long enough — grow it (double, from
      :data:`START_WINDOW`) so a slightly longer gap is still caught;
    * ready after blocking, within ``maximum``: polling a little longer would have caught it
      — grow;
    * ready only after more than ``maximum``: the program is computing, not faulting —
      halve the window (to zero below :data:`START_WINDOW`), so an idle handler stops
      burning a CPU.
    """

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum
        self.window = maximum

    def observed(self, waited: float) -> None:
        """The last wait ended ``waited`` seconds after it began (something became ready)."""
        if waited <= self.maximum:
            if self.window < self.maximum:
                self.window = min(self.maximum, max(START_WINDOW, self.window * 2))
        else:
            self.window /= 2
            if self.window < START_WINDOW:
                self.window = 0.0


class SpinSelector(selectors.EpollSelector):
    """An epoll selector that polls for :class:`SpinPolicy`'s window before it blocks.

    Counters (``polls_caught``, ``blocks``) say how often a wait ended while polling and how
    often it blocked; the handler reports them in its stats.
    """

    def __init__(self, maximum: float) -> None:
        super().__init__()
        self.policy = SpinPolicy(maximum)
        self.polls_caught = 0
        self.blocks = 0

    def set_maximum(self, maximum: float) -> None:
        """Poll for at most ``maximum`` seconds from now on (0: never poll)."""
        self.policy = SpinPolicy(maximum)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Ready keys, as :meth:`selectors.EpollSelector.select`; polls first (see the class)."""
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        policy = self.policy
        if policy.maximum <= 0:
            return super().select(timeout)
        window = policy.window
        clock = time.monotonic
        start = clock()
        if timeout is not None and timeout < window:
            window = timeout
        end = start + window
        poll = super().select
        ready = poll(0)
        while not ready:
            if clock() >= end:
                break
            ready = poll(0)
        if ready:
            self.polls_caught += 1
        else:
            self.blocks += 1
            ready = poll(None if timeout is None else max(0.0, start + timeout - clock()))
            if not ready:
                return ready  # the loop's timer is due: not a measure of the gap
        policy.observed(clock() - start)
        return ready
