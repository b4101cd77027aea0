"""The pager's random-access figure (``pager-50``) for longer than the bench's time cap.

An area of ``--pages`` pages, half of them resident, every page written once (untimed), then
``--ops`` accesses at uniform random pages (``--seq``: a scan from page 0, wrapping around, as
``pager-seq``), one in four a 64-byte write, one at a time; the pager as a user gets it (the
host's bounded default pool, derived watermarks, readahead on).  Prints accesses per wall
second and per CPU second, CPU microseconds per access, p50/p99 latency and the pager's
counters.

    python benchmarks/bench_pager.py memory --ops 60000
    python benchmarks/bench_pager.py memory --ops 60000 --seq
    python benchmarks/bench_pager.py file --ops 60000 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time

from swapio import CreateRequest, PluginHost
from swapio.pager import Pager

WRITE_SHARE = 0.25


async def run(scheme: str, pages: int, ops: int, directory: str, seq: bool = False) -> None:
    host = PluginHost()
    with tempfile.TemporaryDirectory(dir=directory) as d:
        url = f"memory://bench-pager-{os.getpid()}" if scheme == "memory" else f"file://{d}/a"
        area = await host.activate(url, create=CreateRequest(pages=pages))
        rng = random.Random(1)
        data = os.urandom(area.page_size)
        try:
            async with Pager(area, resident_pages=pages // 2) as pager:
                for i in range(pages):
                    await pager.write(i, data)
                lat: list[int] = []
                t0, c0 = time.perf_counter(), time.process_time()
                for n in range(ops):
                    i = n % pages if seq else rng.randrange(pages)
                    a = time.perf_counter_ns()
                    if rng.random() < WRITE_SHARE:
                        await pager.write(i, data[:64])
                    else:
                        await pager.read(i)
                    lat.append(time.perf_counter_ns() - a)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                lat.sort()
                p50, p99 = lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3
                print(
                    f"{scheme}{' seq' if seq else ''}: {ops / wall:,.0f} accesses/s "
                    f"({ops / cpu:,.0f} per CPU-s, {cpu / ops * 1e6:.1f} CPU us each), "
                    f"p50 {p50:.0f} us, p99 {p99:.0f} us, load {os.getloadavg()[0]:.2f}"
                )
                print(pager.stats())
        finally:
            await area.deactivate()
            if scheme == "memory":
                from swapio_memory.plugin import forget

                forget(url.removeprefix("memory://"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scheme", choices=("memory", "file"))
    parser.add_argument("--pages", type=int, default=8192)
    parser.add_argument("--ops", type=int, default=60000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--seq", action="store_true", help="sequential scan (pager-seq)")
    args = parser.parse_args()
    asyncio.run(run(args.scheme, args.pages, args.ops, args.dir, args.seq))


if __name__ == "__main__":
    main()
