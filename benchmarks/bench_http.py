"""The http backend against the ``aiohttp-floor`` peer (issue 11 item 4).

The same workloads as ``swapio bench`` (:mod:`swapio.bench.workloads`: seq-out, seq-in in
64-page calls with one call in flight, rand-out/rand-in as single pages at QD 32), run on
the http backend (page server in this process, memory store, as ``swapio bench -b http``)
and on ``aiohttp-floor`` (aiohttp moving the same bytes, no swapio code), **alternating**
target by target so that the noise of a shared machine hits both alike.  Each round
measures every workload on both; the median over rounds of each target's figure and the
median of the per-round ratios are printed.

    python benchmarks/bench_http.py [--rounds 7] [--pages 16384] [--workload seq-out ...]
    python benchmarks/bench_http.py --profile seq-out      # cProfile of the http side

``--profile`` runs one workload on the http backend only, under cProfile, and prints the
top functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from swapio import CreateRequest, PluginHost
from swapio.bench.results import Kind
from swapio.bench.targets import AiohttpFloorTarget, AreaTarget, Target
from swapio.bench.workloads import DEVICE_WORKLOADS, BenchConfig

WORKLOADS = ("seq-out", "seq-in", "rand-out", "rand-in")


@asynccontextmanager
async def http_target(host: PluginHost, cfg: BenchConfig, uid: str) -> AsyncIterator[Target]:
    from swapio_http.plugin import bench_location

    async with bench_location(host, uid, cfg.qd) as url:
        area = await host.activate(url, create=CreateRequest(cfg.pages, cfg.page_size))
        target = AreaTarget("http", Kind.BACKEND, area.page_size, area.pages, swap_area=area)
        try:
            yield target
        finally:
            await target.close()


@asynccontextmanager
async def floor_target(cfg: BenchConfig) -> AsyncIterator[Target]:
    target = await AiohttpFloorTarget.create(cfg.pages, cfg.page_size, max(16, cfg.qd))
    try:
        yield target
    finally:
        await target.close()


async def one_round(cfg: BenchConfig, workloads: list[str], index: int) -> dict[str, float]:
    """pages/s of every (target, workload) in this round."""
    host = PluginHost()
    out: dict[str, float] = {}
    order = ("http", "floor") if index % 2 == 0 else ("floor", "http")
    for name in order:
        cm = http_target(host, cfg, f"r{index}") if name == "http" else floor_target(cfg)
        async with cm as target:
            for workload in workloads:
                result = await DEVICE_WORKLOADS[workload](target, cfg)
                out[f"{name} {workload}"] = result.pages / result.seconds
    return out


async def profile(cfg: BenchConfig, workload: str) -> None:
    host = PluginHost()
    async with http_target(host, cfg, "profile") as target:
        if workload.endswith("-in"):
            await DEVICE_WORKLOADS["seq-out"](target, cfg)
        prof = cProfile.Profile()
        prof.enable()
        result = await DEVICE_WORKLOADS[workload](target, cfg)
        prof.disable()
    print(f"http {workload}: {result.pages / result.seconds:,.0f} pages/s under cProfile")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pages", type=int, default=16384)
    parser.add_argument("--ops", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--profile", choices=WORKLOADS)
    args = parser.parse_args()
    cfg = BenchConfig(pages=args.pages, ops=args.ops, seconds=args.seconds)
    if args.profile:
        asyncio.run(profile(cfg, args.profile))
        return
    workloads = args.workload or list(WORKLOADS)
    rounds = [asyncio.run(one_round(cfg, workloads, i)) for i in range(args.rounds)]
    print(f"load average before/after: {os.getloadavg()[0]:.2f} (1 min, at the end)")
    print(f"{'workload':9} {'http':>10} {'floor':>10} {'ratio':>6}  per-round ratios")
    for workload in workloads:
        http = [r[f"http {workload}"] for r in rounds]
        floor = [r[f"floor {workload}"] for r in rounds]
        ratios = [h / f for h, f in zip(http, floor, strict=True)]
        print(
            f"{workload:9} {statistics.median(http):>10,.0f} {statistics.median(floor):>10,.0f} "
            f"{statistics.median(ratios):>6.2f}  " + " ".join(f"{r:.2f}" for r in ratios)
        )


if __name__ == "__main__":
    main()
