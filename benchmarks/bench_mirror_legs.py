"""Why the mirror writes its write-back file legs in turn, on the loop: the figures.

    python benchmarks/bench_mirror_legs.py [--dir DIR] [--calls 2000]

A mirror write of 64 pages to two write-back file legs is two 256 KiB ``pwritev`` calls into
the page cache.  Written in turn on the event loop they cost two copies; written at once —
one leg handed to an owner thread (:class:`swapio.owner.OwnerThread`, the file backend's),
the other on the loop meanwhile (``pwritev`` releases the GIL) — they would cost one copy
plus a cross-thread hand-off.  Which wins depends on the hand-off: this prints, per call,
one 256 KiB ``pwritev``, an owner-thread round trip of a no-op, the two legs in turn, and
the two legs at once.  Measurements, not tests; the machine is shared (load average given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

from swapio.owner import OwnerThread

PAGE = 4096
BATCH = 64
SPAN = 128  # calls' offsets cycle over 128 x 256 KiB = 32 MiB per file


async def measure(directory: str, calls: int) -> dict[str, float]:
    """Microseconds per call of each variant (see the module)."""
    paths = [os.path.join(directory, f"legs-{os.getpid()}-{i}.bin") for i in (0, 1)]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for p in paths]
    pages = [bytes([i]) * PAGE for i in range(BATCH)]
    step = BATCH * PAGE
    owner = OwnerThread("bench-mirror-legs")
    try:
        for fd in fds:
            os.ftruncate(fd, SPAN * step)
            for k in range(SPAN):  # the pages exist in the cache before timing
                os.pwritev(fd, pages, k * step)

        def per_call(t0: float) -> float:
            return (time.perf_counter() - t0) / calls * 1e6

        t0 = time.perf_counter()
        for i in range(calls):
            os.pwritev(fds[0], pages, (i % SPAN) * step)
        one = per_call(t0)
        t0 = time.perf_counter()
        for _ in range(calls):
            await owner.submit(int)
        handoff = per_call(t0)
        t0 = time.perf_counter()
        for i in range(calls):
            os.pwritev(fds[0], pages, (i % SPAN) * step)
            os.pwritev(fds[1], pages, (i % SPAN) * step)
        in_turn = per_call(t0)
        t0 = time.perf_counter()
        for i in range(calls):
            offset = (i % SPAN) * step
            other = asyncio.ensure_future(owner.submit(os.pwritev, fds[0], pages, offset))
            await asyncio.sleep(0)  # the submission reaches the owner thread
            os.pwritev(fds[1], pages, offset)
            await other
        at_once = per_call(t0)
    finally:
        await owner.stop()
        for fd, path in zip(fds, paths, strict=True):
            os.close(fd)
            os.unlink(path)
    return {
        "pwritev_256k_us": one,
        "owner_round_trip_us": handoff,
        "two_legs_in_turn_us": in_turn,
        "two_legs_at_once_us": at_once,
    }


def main() -> None:
    """Run the variants and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    before = os.getloadavg()
    out: dict[str, object] = dict(asyncio.run(measure(args.dir, args.calls)))
    out["loadavg_before"] = before
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
