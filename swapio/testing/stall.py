"""Event-loop stall detection around a backend's hook calls (the conformance kit's watchdog).

Two instruments, both on the loop's own thread:

* **Step timer.**  Each data-hook coroutine (``swapfile``, ``swap_out``, ``swap_in``,
  ``swap_discard``, ``swap_copy``) is driven one step at a time (``coro.send``), the way an
  asyncio task drives it, and each step is timed: a step is code that ran on the loop without
  yielding, so a long one names the hook that blocked.
* **Lag watchdog.**  A task sleeps ``interval`` seconds in a loop and measures how late it
  wakes up.  It catches blocking in a backend's callbacks and tasks (a protocol's
  ``data_received``, a background task), which are not steps of a hook; a stall it sees is
  charged to the hooks in flight at the time.  It is less precise (below), so its stalls
  count from twice the threshold.

A step counts only if the loop's thread slept in the kernel during it (a voluntary context
switch: a blocking call) or spent at least half of it on the CPU; a step that did neither was
stopped from outside (the hypervisor's steal time).

Both subtract the time the loop's thread spent *waiting for a CPU* (field 2 of Linux's
``/proc/self/task/TID/schedstat``, ``sched_info.run_delay``: on a loaded machine the
scheduler may preempt the loop for tens of milliseconds; elsewhere this part is 0), the
longest such wait of any other Python thread (one preempted while it holds the GIL keeps the
loop waiting), the time in Python's cyclic garbage collector (``gc.callbacks``: a full
collection costs in proportion to every object of the test process), and the time the
hypervisor took from the machine's CPUs (*steal*, field 8 of each ``cpuN`` line of
``/proc/stat``, ``fs/proc/stat.c``; the most any one CPU lost).  Steal matters even for a
step that slept: starting a thread waits in the kernel for the new thread to run, and if the
hypervisor does not run that vCPU the wait — seen once at 0.122 s in a file area's
``swapfile`` under CI — is the host's doing.  It is counted in clock ticks (10 ms), so a
step is excused to within a tick.  None of it is the backend's doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from swapio.area import BoundOps

T = TypeVar("T")

#: Hooks the watch wraps (those of :class:`~swapio.area.BoundOps`).
WATCHED_HOOKS = ("swapfile", "swap_out", "swap_in", "swap_discard", "swap_copy")


class _RunDelays:
    """Seconds each Python thread of the process has waited on a run queue (preempted), read
    from ``/proc/self/task/TID/schedstat`` (field 2, ``sched_info.run_delay``); empty where
    there is no such file."""

    def __init__(self) -> None:
        self.own = threading.get_native_id()
        self._fds: dict[int, int] = {}

    def snapshot(self) -> dict[int, float]:
        delays: dict[int, float] = {}
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None:
                continue
            fd = self._fds.get(tid)
            try:
                if fd is None:
                    fd = self._fds[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                delays[tid] = int(os.pread(fd, 128, 0).split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
        return delays

    def excused(self, before: dict[int, float], after: dict[int, float]) -> float:
        """The loop thread's own run-queue wait between the snapshots, plus the longest of any
        other thread's (one preempted while holding the GIL keeps the loop waiting for it)."""
        own = after.get(self.own, 0.0) - before.get(self.own, 0.0)
        # a thread started since (an executor's new worker) counts all of its wait
        others = (after[tid] - before.get(tid, 0.0) for tid in after if tid != self.own)
        return own + max(others, default=0.0)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def parse_steal(stat: str) -> list[int]:
    """Steal ticks of each ``cpuN`` line of ``/proc/stat`` (the aggregate ``cpu`` line left
    out); a line without the field counts 0."""
    out = []
    for line in stat.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            fields = line.split()
            out.append(int(fields[8]) if len(fields) > 8 else 0)
    return out


class _Steal:
    """Seconds the hypervisor took from each CPU, read from ``/proc/stat`` (empty where there
    is no such file)."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = -1

    def snapshot(self) -> list[int]:
        if self._fd < 0:
            return []
        try:
            return parse_steal(os.pread(self._fd, 1 << 16, 0).decode("ascii", "replace"))
        except (OSError, ValueError):
            return []

    def excused(self, before: list[int], after: list[int]) -> float:
        """The most steal any one CPU had between the snapshots, in seconds."""
        most = max((b - a for a, b in zip(before, after, strict=False)), default=0)
        return max(0, most) / self._tick

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _sleeps() -> int:
    """Voluntary context switches of the calling thread so far (it slept in the kernel)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class _GcTime:
    """Seconds spent in the cyclic garbage collector while installed (``gc.callbacks``).

    A full collection pauses whatever code allocated last, for a time that grows with every
    object of the process (pytest's included): not the backend's doing.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started

    def __call__(self) -> float:
        return self.total

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)


@dataclass(frozen=True)
class Stall:
    """The loop was held ``seconds`` by ``where`` (a hook name, or hooks in flight)."""

    where: str
    seconds: float
    step: bool  # True: one step of the hook's own coroutine; False: seen by the watchdog
    cpu: float = 0.0  # of ``seconds``, on the CPU (the rest: blocked in the kernel)
    sleeps: int = 0  # voluntary context switches of the loop's thread: it slept in the kernel

    def describe(self) -> str:
        if self.step:
            return (
                f"{self.where} ran {self.seconds:.3f} s on the event loop without yielding "
                f"({self.cpu:.3f} s of it on the CPU, {self.sleeps} sleep(s) in the kernel)"
            )
        return (
            f"the event loop stalled {self.seconds:.3f} s while {self.where} was in flight "
            "(in a callback or task of the backend, not the hook's own code)"
        )


class StallWatch:
    """Records event-loop stalls of at least ``threshold`` seconds caused by hook calls.

    Create and use it inside the running loop: ``async with watch.running(): ...`` starts
    the watchdog; :meth:`wrap_ops` instruments an area's bound hooks.
    """

    def __init__(self, threshold: float, interval: float = 0.01) -> None:
        self.threshold = threshold
        #: The watchdog cannot tell a blocked callback from the loop waiting for a CPU or the
        #: GIL as closely as the step timer can, so its stalls count from twice the limit.
        self.watchdog_threshold = 2 * threshold
        self.interval = interval
        self.stalls: list[Stall] = []
        self._in_flight: Counter[str] = Counter()
        self._run_delays = _RunDelays()
        self._gc = _GcTime()
        self._steal = _Steal()
        self._last_step_stall = -1.0

    # --- step timer -----------------------------------------------------------------

    def _mark(self) -> tuple[dict[int, float], float, list[int]]:
        return self._run_delays.snapshot(), self._gc(), self._steal.snapshot()

    def _excused(self, mark: tuple[dict[int, float], float, list[int]]) -> float:
        """Seconds since ``mark`` the loop waited for a CPU, for a preempted thread holding the
        GIL, for the garbage collector, or for the hypervisor to give a CPU back: none of it
        the backend's doing."""
        delays, gc_time, steal = self._mark()
        return (
            self._run_delays.excused(mark[0], delays)
            + gc_time
            - mark[1]
            + self._steal.excused(mark[2], steal)
        )

    def _step_done(
        self,
        hook: str,
        start: float,
        mark: tuple[dict[int, float], float, list[int]],
        cpu_start: float,
        sleeps_start: int,
    ) -> None:
        now = time.perf_counter()
        held = (now - start) - self._excused(mark)
        if held >= self.threshold:
            cpu = time.thread_time() - cpu_start
            sleeps = _sleeps() - sleeps_start
            # Blocking code either sleeps in the kernel or burns CPU; a step that did
            # neither was stopped from outside (the hypervisor took the CPU: steal time).
            if sleeps or cpu >= held / 2:
                self.stalls.append(Stall(hook, held, step=True, cpu=cpu, sleeps=sleeps))
                self._last_step_stall = now

    def _stepped(self, hook: str, coro: Coroutine[Any, Any, T]) -> Generator[Any, Any, T]:
        """Drive ``coro`` as ``yield from`` would, timing each step."""
        value: Any = None
        error: BaseException | None = None
        while True:
            start = time.perf_counter()
            mark = self._mark()
            cpu = time.thread_time()
            sleeps = _sleeps()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                self._step_done(hook, start, mark, cpu, sleeps)
                return stop.value  # type: ignore[no-any-return]
            except BaseException:
                self._step_done(hook, start, mark, cpu, sleeps)
                raise
            self._step_done(hook, start, mark, cpu, sleeps)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and friends: hand them to the hook
                value, error = None, exc

    def watch(self, hook: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        """``fn`` (an ``async def`` hook) with its steps timed and its calls counted in flight."""

        async def watched(*args: Any) -> T:
            self._in_flight[hook] += 1
            try:
                coro = fn(*args)
                if not isinstance(coro, Coroutine):
                    return await coro
                return await _Awaitable(self._stepped(hook, coro))
            finally:
                self._in_flight[hook] -= 1

        return watched

    def wrap_ops(self, ops: BoundOps) -> BoundOps:
        """``ops`` with every hook it binds watched."""
        changes: dict[str, Any] = {
            name: self.watch(name, getattr(ops, name))
            for name in WATCHED_HOOKS
            if getattr(ops, name) is not None
        }
        return dataclasses.replace(ops, **changes)

    # --- lag watchdog ---------------------------------------------------------------

    async def _watchdog(self) -> None:
        while True:
            start = time.perf_counter()
            mark = self._mark()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            lag = (now - start - self.interval) - self._excused(mark)
            busy = sorted(h for h, n in self._in_flight.items() if n > 0)
            if lag >= self.watchdog_threshold and busy and self._last_step_stall < start:
                self.stalls.append(Stall(" and ".join(busy), lag, step=False))

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """Run the lag watchdog for the duration of the block."""
        task = asyncio.get_running_loop().create_task(self._watchdog())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._run_delays.close()
            self._gc.close()
            self._steal.close()

    def report(self, limit_name: str) -> str:
        """One message naming every stall recorded (worst first), or ``""`` if none."""
        if not self.stalls:
            return ""
        worst = sorted(self.stalls, key=lambda s: -s.seconds)
        lines = [s.describe() for s in worst[:5]]
        if len(worst) > 5:
            lines.append(f"... and {len(worst) - 5} more")
        return (
            f"the backend blocked the event loop ({len(worst)} stall(s) of at least "
            f"{self.threshold:.3f} s, the limit set by {limit_name}):\n  "
            + "\n  ".join(lines)
            + "\nhand blocking work (file or socket I/O, sleeps, heavy CPU) to a thread once "
            "per request; see 'Blocking work' in docs/plugin-authors.md"
        )


class _Awaitable(Generic[T]):
    """Wrap a generator so ``await`` drives it (its steps are yielded to the task)."""

    def __init__(self, gen: Generator[Any, Any, T]) -> None:
        self._gen = gen

    def __await__(self) -> Generator[Any, Any, T]:
        return (yield from self._gen)
