"""The http backend against the ``aiohttp-floor`` peer (issue 11 item 4).

Same workloads as ``swapio bench`` — seq-out/seq-in: 64-page calls, one in flight;
rand-out/rand-in: single pages at QD 32 — on

* ``http``: the http backend against a page server (memory store) started in this process
  (``--server inproc``, as ``swapio bench`` did until it moved the server out) or as
  ``swapio serve`` in its own process (``--server process``);
* ``floor``: the ``aiohttp-floor`` peer — aiohttp client and server in this process moving
  the same bytes with no swapio code (the same handlers as the peer in ``swapio bench``).

Both targets are open at once and **short bursts alternate** between them (10 x 0.3 s each by
default), so the noise of a shared machine hits both alike; totals per target are printed.

    python benchmarks/bench_http.py [--rounds 7] [--server inproc|process] [--workload W ...]
    python benchmarks/bench_http.py --profile seq-out      # cProfile of the http side
    python benchmarks/bench_http.py --lowlevel             # + the floor on aiohttp's web.Server

``--lowlevel`` adds a third target, ``floor-lowlevel``: the floor's handlers behind aiohttp's
low-level ``web.Server`` (no ``Application``, router or middleware; the request handler gets
every request), which bounds what a page server would save by leaving aiohttp's application
layer.  Heap trimming (glibc returning freed memory after each 256 KiB buffer, so the next
one page-faults) is measured by running the same command with ``MALLOC_TRIM_THRESHOLD_`` set
(see docs/http.md, "Performance").
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
    #: Seconds each sequential call took (for the median call: the one no other process
    #: preempted, the steadiest figure on a busy machine).
    calls: list[float] = field(default_factory=list)
    #: CPU seconds used so far by processes of this target other than this one (a page
    #: server in its own process), so CPU per page counts both ends of the wire.
    other_cpu: Callable[[], float] = lambda: 0.0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc/PID/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        other = (lambda: process_cpu(proc.pid)) if proc is not None else (lambda: 0.0)
        yield Target(area.swap_out, area.swap_in, {"area": area}, other_cpu=other)
    finally:
        await area.deactivate()
        if running is not None:
            await running.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(30)


@asynccontextmanager
async def floor_target(lowlevel: bool = False) -> AsyncIterator[Target]:
    """The ``aiohttp-floor`` peer's handlers and client calls, as in ``swapio bench``; with
    ``lowlevel``, served by aiohttp's ``web.Server`` (one handler, routing by path)."""
    blob = bytes(PAGE * BATCH)

    async def sink(request: web.Request) -> web.Response:
        async for _chunk, _ in request.content.iter_chunks():
            pass
        return web.Response(body=b"\0" * 16)

    async def source(request: web.Request) -> web.Response:
        count = int(await request.text())
        return web.Response(body=blob[: count * PAGE])

    async def route(request: web.BaseRequest) -> web.Response:
        return await (sink if request.path == "/w" else source)(request)  # type: ignore[arg-type]

    runner: web.BaseRunner
    if lowlevel:
        runner = web.ServerRunner(web.Server(route, access_log=None))
    else:
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


async def sequential(
    target: Target, pages: int, out: bool, seconds: float, *, wrap: bool = False
) -> int:
    """``BATCH``-page calls from slot 0 until ``pages`` (or, with ``wrap``, until ``seconds``
    have passed); the pages moved."""
    data = _views(BATCH)
    op = target.write if out else target.read
    moved, start = 0, time.perf_counter()
    clock, calls = time.perf_counter, target.calls
    while (wrap or moved < pages) and clock() - start <= seconds:
        began = clock()
        await op((moved % pages) // BATCH * BATCH, data)
        calls.append(clock() - began)
        moved += BATCH
    return moved


async def randomly(
    target: Target, pages: int, out: bool, ops: int, seconds: float, *, seed: int = 1
) -> int:
    """``ops`` one-page calls to distinct random slots, ``QD`` in flight; the pages moved."""
    rng = random.Random(seed)
    slots = iter(rng.sample(range(pages), min(ops, pages)))
    op = target.write if out else target.read
    moved, start = 0, time.perf_counter()

    async def worker() -> None:
        nonlocal moved
        view = _views(1)
        for slot in slots:
            await op(slot, view)
            moved += 1
            if time.perf_counter() - start > seconds:
                return

    await asyncio.gather(*(worker() for _ in range(QD)))
    return moved


async def burst(
    target: Target, workload: str, pages: int, seconds: float, seed: int, *, ops: int = 0
) -> tuple[int, float, float]:
    """One run: (pages moved, wall seconds, CPU seconds of this process).  Sequential runs
    wrap around the area until ``seconds``; random ones stop after ``ops`` pages (default: one
    pass over the area) or ``seconds``."""
    cpu, wall = time.process_time() + target.other_cpu(), time.perf_counter()
    if workload.startswith("seq"):
        moved = await sequential(target, pages, workload == "seq-out", seconds, wrap=True)
    else:
        out = workload == "rand-out"
        moved = await randomly(target, pages, out, ops or pages, seconds, seed=seed)
    cpu = time.process_time() + target.other_cpu() - cpu
    return moved, time.perf_counter() - wall, cpu


async def run(
    target: Target, workload: str, pages: int, ops: int, seconds: float
) -> tuple[float, float]:
    """(pages per wall-clock second, pages per CPU second of this process)."""
    cpu, wall = time.process_time(), time.perf_counter()
    if workload.startswith("seq"):
        moved = await sequential(target, pages, workload == "seq-out", seconds)
    else:
        moved = await randomly(target, pages, workload == "rand-out", ops, seconds)
    elapsed = time.perf_counter() - wall
    return moved / elapsed, moved / max(time.process_time() - cpu, 1e-9)


async def interleaved(args: argparse.Namespace, workloads: list[str]) -> dict[str, list[float]]:
    """Both targets open at once; bursts alternate between them, totals per target."""
    totals: dict[str, list[float]] = {}
    async with (
        http_target(args.pages, args.server) as http,
        floor_target() as floor,
        floor_target(lowlevel=True) as lowlevel,
    ):
        pair = [("http", http), ("floor", floor)]
        if args.lowlevel:
            pair.append(("floor-lowlevel", lowlevel))
        for _, target in pair:
            await sequential(target, args.pages, True, 60.0)  # untimed fill for the readers
        for workload in workloads:
            for _, target in pair:
                target.calls.clear()
            for index in range(args.rounds):
                for name, target in pair if index % 2 == 0 else pair[::-1]:
                    got = await burst(target, workload, args.pages, args.seconds, index)
                    row = totals.setdefault(f"{name} {workload}", [0.0, 0.0, 0.0])
                    for i, value in enumerate(got):
                        row[i] += value
            for name, target in pair:
                if target.calls:
                    totals[f"{name} {workload}"].append(statistics.median(target.calls))
    return totals


async def profile(args: argparse.Namespace) -> None:
    """cProfile of the http side, timed by this process's CPU clock: with ``--server
    process`` the page server's CPU and the time spent waiting for it are not attributed to
    the client's functions (a wall-clock profile charges them to ``send`` and ``poll``)."""
    async with http_target(args.pages, args.server) as target:
        await sequential(target, args.pages, True, 60.0)
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        moved, wall, cpu = await burst(target, args.profile, args.pages, args.seconds, 1)
        prof.disable()
    print(
        f"http {args.profile} under cProfile: {moved / wall:,.0f} pages/s, "
        f"{cpu / moved * 1e6:.2f} us of this process's CPU per page"
    )
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(30)


def warm_allocator() -> None:
    """Put glibc's allocator in the state of a long-running process, as ``swapio bench``'s
    is by the time its peers run: freeing a 16 MiB buffer raises the mmap threshold
    (``M_MMAP_THRESHOLD`` adapts to the largest freed mapping), so the floor's 256 KiB
    buffers come from the heap instead of a fresh ``mmap`` each (page faults per request
    that would make the peer twice as slow as in ``swapio bench``)."""
    scratch = bytearray(16 << 20)
    del scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="bursts per target")
    parser.add_argument("--pages", type=int, default=16384)
    parser.add_argument("--ops", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one burst")
    parser.add_argument("--server", choices=("inproc", "process"), default="inproc")
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument("--profile", choices=WORKLOADS)
    parser.add_argument(
        "--lowlevel", action="store_true", help="also the floor on aiohttp's low-level web.Server"
    )
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args))
        return
    workloads = args.workload or list(WORKLOADS)
    warm_allocator()
    load_before = os.getloadavg()
    totals = asyncio.run(interleaved(args, workloads))
    load_after = os.getloadavg()
    print(
        f"server {args.server}; {args.rounds} alternating bursts of {args.seconds} s per target "
        f"and workload; load average (1 min) before {load_before[0]:.2f}, after "
        f"{load_after[0]:.2f}"
    )
    print("pages/s over wall-clock time, and pages per CPU-second of client and server together")
    print("(this process, plus the page server's process with --server process)")
    print(
        f"{'workload':9} {'http':>10} {'floor':>10} {'ratio':>6} {'http cpu':>10} "
        f"{'floor cpu':>10} {'ratio':>6}"
    )
    for workload in workloads:
        h_pages, h_wall, h_cpu, *h_p50 = totals[f"http {workload}"]
        f_pages, f_wall, f_cpu, *f_p50 = totals[f"floor {workload}"]
        hw, fw, hc, fc = h_pages / h_wall, f_pages / f_wall, h_pages / h_cpu, f_pages / f_cpu
        print(
            f"{workload:9} {hw:>10,.0f} {fw:>10,.0f} {hw / fw:>6.2f} {hc:>10,.0f} "
            f"{fc:>10,.0f} {hc / fc:>6.2f}"
        )
        if h_p50 and f_p50:
            print(
                f"{'':9} median {BATCH}-page call: http {h_p50[0] * 1e6:,.0f} us, floor "
                f"{f_p50[0] * 1e6:,.0f} us: http at {f_p50[0] / h_p50[0]:.2f}x the floor's rate"
            )
        if args.lowlevel:
            l_pages, l_wall, l_cpu = totals[f"floor-lowlevel {workload}"]
            lw, lc = l_pages / l_wall, l_pages / l_cpu
            print(
                f"{'':9} {'lowlevel':>10} {lw:>10,.0f} {lw / fw:>6.2f} {'vs floor':>10} "
                f"{lc:>10,.0f} {lc / fc:>6.2f}"
            )


if __name__ == "__main__":
    main()
