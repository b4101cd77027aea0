"""The http backend against the ``aiohttp-floor`` peer (issue 11 item 4).

Same workloads as ``swapio bench`` — seq-out/seq-in: 64-page calls, one in flight;
rand-out/rand-in: single pages at QD 32 — on

* ``http``: the http backend against a page server (memory store) started in this process
  (``--server inproc``, as ``swapio bench`` did until it moved the server out) or as
  ``swapio serve`` in its own process (``--server process``);
* ``floor``: the ``aiohttp-floor`` peer — aiohttp client and server in this process moving
  the same bytes with no swapio code (the same handlers as the peer in ``swapio bench``).

Targets **alternate** round by round so that the noise of a shared machine hits both alike;
the medians over rounds of each figure and of the per-round ratios are printed.

    python benchmarks/bench_http.py [--rounds 7] [--server inproc|process] [--workload W ...]
    python benchmarks/bench_http.py --profile seq-out      # cProfile of the http side
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from swapio import CreateRequest, PluginHost

WORKLOADS = ("seq-out", "seq-in", "rand-out", "rand-in")
PAGE = 4096
BATCH = 64
QD = 32


@dataclass
class Target:
    write: Callable[[int, Sequence[memoryview]], Awaitable[None]]
    read: Callable[[int, Sequence[memoryview]], Awaitable[None]]
    extra: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def http_target(pages: int, server: str) -> AsyncIterator[Target]:
    from swapio_http._auth import TokenSet
    from swapio_http.server import ServerConfig, start_server

    token = secrets.token_urlsafe(24)
    os.environ["SWAPIO_TOKEN"] = token
    proc = None
    running = None
    if server == "inproc":
        running = await start_server(ServerConfig(tokens=TokenSet((token,))), port=0)
        base = running.url
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swapio", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        base = proc.stdout.readline().split()[-1]
    url = f"{base}/areas/b{secrets.token_hex(4)}?connections={QD}"
    area = await PluginHost().activate(url, create=CreateRequest(pages, PAGE))
    try:
        yield Target(area.swap_out, area.swap_in, {"area": area})
    finally:
        await area.deactivate()
        if running is not None:
            await running.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(30)


@asynccontextmanager
async def floor_target() -> AsyncIterator[Target]:
    """The ``aiohttp-floor`` peer's handlers and client calls, as in ``swapio bench``."""
    blob = bytes(PAGE * BATCH)

    async def sink(request: web.Request) -> web.Response:
        async for _chunk, _ in request.content.iter_chunks():
            pass
        return web.Response(body=b"\0" * 16)

    async def source(request: web.Request) -> web.Response:
        count = int(await request.text())
        return web.Response(body=blob[: count * PAGE])

    app = web.Application(client_max_size=len(blob) + 1024)
    app.router.add_post("/w", sink)
    app.router.add_post("/r", source)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=QD))

    async def write(slot: int, pages: Sequence[memoryview]) -> None:
        async with session.post(f"{base}/w", data=b"".join(pages)) as response:
            await response.read()

    async def read(slot: int, views: Sequence[memoryview]) -> None:
        async with session.post(f"{base}/r", data=str(len(views))) as response:
            data = memoryview(await response.read())
        for i, view in enumerate(views):
            view[:] = data[i * PAGE : (i + 1) * PAGE]

    try:
        yield Target(write, read)
    finally:
        await session.close()
        await runner.cleanup()


def _views(n: int) -> list[memoryview]:
    block = memoryview(bytearray(os.urandom(PAGE * n)))
    return [block[i * PAGE : (i + 1) * PAGE] for i in range(n)]


async def sequential(target: Target, pages: int, out: bool, seconds: float) -> float:
    data = _views(BATCH)
    op = target.write if out else target.read
    done, start = 0, time.perf_counter()
    for slot in range(0, pages, BATCH):
        await op(slot, data)
        done += BATCH
        if time.perf_counter() - start > seconds:
            break
    return done / (time.perf_counter() - start)


async def randomly(target: Target, pages: int, out: bool, ops: int, seconds: float) -> float:
    rng = random.Random(1)
    slots = iter(rng.sample(range(pages), min(ops, pages)))
    op = target.write if out else target.read
    done, start = 0, time.perf_counter()

    async def worker() -> None:
        nonlocal done
        view = _views(1)
        for slot in slots:
            await op(slot, view)
            done += 1
            if time.perf_counter() - start > seconds:
                return

    await asyncio.gather(*(worker() for _ in range(QD)))
    return done / (time.perf_counter() - start)


async def run(
    target: Target, workload: str, pages: int, ops: int, seconds: float
) -> tuple[float, float]:
    """(pages per wall-clock second, pages per CPU second of this process)."""
    cpu = time.process_time()
    wall = time.perf_counter()
    if workload.startswith("seq"):
        rate = await sequential(target, pages, workload == "seq-out", seconds)
    else:
        rate = await randomly(target, pages, workload == "rand-out", ops, seconds)
    moved = rate * (time.perf_counter() - wall)
    return rate, moved / max(time.process_time() - cpu, 1e-9)


async def one_round(args: argparse.Namespace, workloads: list[str], index: int) -> dict[str, float]:
    out: dict[str, float] = {}
    order = ("http", "floor") if index % 2 == 0 else ("floor", "http")
    for name in order:
        cm = http_target(args.pages, args.server) if name == "http" else floor_target()
        async with cm as target:
            await sequential(target, args.pages, True, 60.0)  # untimed fill for the readers
            for workload in workloads:
                wall, cpu = await run(target, workload, args.pages, args.ops, args.seconds)
                out[f"{name} {workload}"] = wall
                out[f"{name} {workload} cpu"] = cpu
    return out


async def profile(args: argparse.Namespace) -> None:
    async with http_target(args.pages, args.server) as target:
        await sequential(target, args.pages, True, 60.0)
        prof = cProfile.Profile()
        prof.enable()
        rate, _ = await run(target, args.profile, args.pages, args.ops, args.seconds)
        prof.disable()
    print(f"http {args.profile}: {rate:,.0f} pages/s under cProfile")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pages", type=int, default=16384)
    parser.add_argument("--ops", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--server", choices=("inproc", "process"), default="inproc")
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--profile", choices=WORKLOADS)
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args))
        return
    workloads = args.workload or list(WORKLOADS)
    load_before = os.getloadavg()
    rounds = [asyncio.run(one_round(args, workloads, i)) for i in range(args.rounds)]
    load_after = os.getloadavg()
    print(
        f"server {args.server}; {args.rounds} rounds; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)"
    )
    print("pages/s (wall clock), and pages per CPU-second of this process (client + in-process")
    print("servers; with --server process the page server's CPU is not counted)")
    print(f"{'workload':14} {'http':>10} {'floor':>10} {'ratio':>6}  per-round ratios")
    for workload in workloads:
        for suffix in ("", " cpu"):
            http = [r[f"http {workload}{suffix}"] for r in rounds]
            floor = [r[f"floor {workload}{suffix}"] for r in rounds]
            ratios = [h / f for h, f in zip(http, floor, strict=True)]
            print(
                f"{workload + suffix:14} {statistics.median(http):>10,.0f} "
                f"{statistics.median(floor):>10,.0f} {statistics.median(ratios):>6.2f}  "
                + " ".join(f"{r:.2f}" for r in ratios)
            )


if __name__ == "__main__":
    main()
