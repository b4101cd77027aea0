"""The benchmark's workloads: the same loops for every backend and every peer.

* ``seq-out`` / ``seq-in`` — slots 0, B, 2B, ... in calls of ``batch`` pages, one call in
  flight (a ``dd``-like stream); latency is per call.
* ``rand-out`` / ``rand-in`` — single 4 KiB-page calls at random slots, ``qd`` calls in flight;
  latency is per page.  ``rand-out`` never has two writes to one slot in flight (each slot
  appears once), as the hook contract requires.
* ``pager-50`` / ``pager-75`` / ``pager-100`` / ``pager-seq`` and ``pressure`` live in
  :mod:`swapio.bench.paging` (they need the pager and the scheduler).

Every workload stops at its page count or at ``seconds``, whichever comes first, and reports
the pages it actually moved, so a slow backend costs bounded time.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from swapio.bench.results import Result
from swapio.bench.targets import Target


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and limits shared by every workload."""

    pages: int = 8192
    page_size: int = 4096
    batch: int = 64
    qd: int = 32
    ops: int = 4096
    seconds: float = 0.5
    seed: int = 1
    #: Runs of each (target, workload); the median run is reported with the spread.
    repeat: int = 3
    #: Also run the scheduler's model backend without the reserve (``pressure``; ~30 s).
    reserve_demo: bool = True


Workload = Callable[[Target, BenchConfig], Awaitable[Result]]


def _batch_data(cfg: BenchConfig) -> list[memoryview]:
    """One batch of incompressible pages (random bytes), reused for every call."""
    block = memoryview(os.urandom(cfg.page_size * cfg.batch))
    return [block[i * cfg.page_size : (i + 1) * cfg.page_size] for i in range(cfg.batch)]


def _result(
    target: Target, workload: str, pages: int, seconds: float, samples: list[int], **extra: object
) -> Result:
    return Result(
        target=target.name,
        kind=target.kind,
        workload=workload,
        page_size=target.page_size,
        pages=pages,
        seconds=seconds,
        samples=tuple(samples),
        extra=dict(extra),
    )


async def fill(target: Target, cfg: BenchConfig) -> None:
    """Untimed: make sure slots [0, cfg.pages) hold data (for the read workloads)."""
    if target.written >= min(cfg.pages, target.pages):
        return
    data = _batch_data(cfg)
    end = min(cfg.pages, target.pages)
    for slot in range(target.written, end, cfg.batch):
        n = min(cfg.batch, end - slot)
        await target.write(slot, data[:n])
        target.written = slot + n


async def seq_out(target: Target, cfg: BenchConfig) -> Result:
    data = _batch_data(cfg)
    end = min(cfg.pages, target.pages)
    samples: list[int] = []
    done = 0
    start = time.perf_counter()
    deadline = start + cfg.seconds
    for slot in range(0, end, cfg.batch):
        n = min(cfg.batch, end - slot)
        t0 = time.perf_counter_ns()
        await target.write(slot, data[:n])
        samples.append(time.perf_counter_ns() - t0)
        done += n
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - start
    target.written = max(target.written, done)
    return _result(target, "seq-out", done, seconds, samples, batch=cfg.batch, qd=1)


async def seq_in(target: Target, cfg: BenchConfig) -> Result:
    await fill(target, cfg)
    end = min(target.written, target.pages)
    buf = memoryview(bytearray(cfg.page_size * cfg.batch))
    views = [buf[i * cfg.page_size : (i + 1) * cfg.page_size] for i in range(cfg.batch)]
    samples: list[int] = []
    done = 0
    start = time.perf_counter()
    deadline = start + cfg.seconds
    for slot in range(0, end, cfg.batch):
        n = min(cfg.batch, end - slot)
        t0 = time.perf_counter_ns()
        await target.read(slot, views[:n])
        samples.append(time.perf_counter_ns() - t0)
        done += n
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - start
    return _result(target, "seq-in", done, seconds, samples, batch=cfg.batch, qd=1)


async def _random(
    target: Target,
    cfg: BenchConfig,
    slots: Iterator[int],
    op: Callable[[int, int], Awaitable[None]],
) -> tuple[int, float, list[int]]:
    """Run ``op(worker, slot)`` for each slot with ``qd`` workers; (ops, seconds, samples)."""
    samples: list[int] = []
    start = time.perf_counter()
    deadline = start + cfg.seconds

    async def worker(index: int) -> None:
        for slot in slots:  # shared iterator: each slot is taken by exactly one worker
            t0 = time.perf_counter_ns()
            await op(index, slot)
            samples.append(time.perf_counter_ns() - t0)
            if time.perf_counter() > deadline:
                return

    await asyncio.gather(*(worker(i) for i in range(cfg.qd)))
    return len(samples), time.perf_counter() - start, samples


async def rand_out(target: Target, cfg: BenchConfig) -> Result:
    rng = random.Random(cfg.seed)
    span = min(cfg.pages, target.pages)
    slots = rng.sample(range(span), min(cfg.ops, span))
    page = _batch_data(cfg)[0]

    async def op(_worker: int, slot: int) -> None:
        await target.write(slot, [page])

    done, seconds, samples = await _random(target, cfg, iter(slots), op)
    return _result(target, "rand-out", done, seconds, samples, qd=cfg.qd)


async def rand_in(target: Target, cfg: BenchConfig) -> Result:
    await fill(target, cfg)
    rng = random.Random(cfg.seed + 1)
    span = max(1, min(target.written, target.pages))
    slots = [rng.randrange(span) for _ in range(cfg.ops)]
    buffers = [memoryview(bytearray(cfg.page_size)) for _ in range(cfg.qd)]

    async def op(worker: int, slot: int) -> None:
        await target.read(slot, [buffers[worker]])

    done, seconds, samples = await _random(target, cfg, iter(slots), op)
    return _result(target, "rand-in", done, seconds, samples, qd=cfg.qd)


#: The device workloads, in the order they run (seq-out leaves data for the readers).
DEVICE_WORKLOADS: dict[str, Workload] = {
    "seq-out": seq_out,
    "seq-in": seq_in,
    "rand-out": rand_out,
    "rand-in": rand_in,
}
