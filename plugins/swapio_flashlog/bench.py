"""Benchmarks of the flashlog backend (run by ``benchmarks/bench_flashlog.py``).

* :func:`bench_write_amplification` — uniform random overwrites at a given utilisation,
  beside the analytic value for greedy cleaning.
* :func:`bench_wear` — erase-count spread after writing many device sizes with a hot/cold
  skew.
* :func:`bench_mount` — mount time of an image with and without erase-block summaries.
* :func:`bench_swap_out` — sequential swap-out through swapio, flashlog beside the file
  backend on the same directory; returns result dicts (``target``, ``kind``, ``workload``,
  ``page_size``, ``pages``, ``seconds``, ``pages_per_s``, ``bw_bytes``, ``lat_ns``).
* :func:`targets` — the ``flashlog`` target of ``swapio bench`` (the ``swapio_bench`` hook).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.bench.hook import BenchSite, BenchTarget, Durability
from swapio.location import Location
from swapio_flashlog.device import Geometry, remove_image
from swapio_flashlog.log import CHUNK_COST, FlashLog, LogOptions
from swapio_flashlog.plugin import FlashArea

PAGE = 4096
BATCH = 64


def greedy_wa_large_block(utilisation: float) -> float:
    """Write amplification of greedy cleaning under uniform random writes, large-block limit.

    With many pages per block every block's valid fraction decays alike, so greedy picks the
    oldest block and behaves as FIFO/LRU cleaning: the valid fraction ``x`` of a cleaned
    block solves ``x = exp(-(1 - x) / u)`` and WA = 1 / (1 - x) (Rosenblum & Ousterhout's
    LFS model; Desnoyers, "Analytic models of SSD write performance", 2014).  Finite blocks
    give greedy some variance to exploit, so a real greedy cleaner can do better.
    """
    x = 0.0
    for _ in range(10_000):
        nxt = math.exp(-(1.0 - x) / utilisation)
        if abs(nxt - x) < 1e-12:
            break
        x = nxt
    return 1.0 / (1.0 - x)


def _nodes_per_block(erase_block: int) -> int:
    return (erase_block - 12 - 40) // CHUNK_COST


def bench_write_amplification(
    directory: Path,
    utilisation: float,
    *,
    blocks: int = 256,
    erase_block: int = 65536,
    warmup: float = 4.0,
    measure: float = 4.0,
    policy: str = "greedy",
    seed: int = 1,
) -> dict[str, Any]:
    """Uniform random 4 KiB overwrites; WA counted in nodes and in flash bytes."""
    path = directory / f"wa-{utilisation}-{policy}.img"
    geometry = Geometry(blocks * erase_block, erase_block)
    capacity = blocks * _nodes_per_block(erase_block)
    pages = int(capacity * utilisation)
    opts = LogOptions(policy="jffs2" if policy == "jffs2" else "greedy", seed=seed)
    log = FlashLog.format(str(path), geometry, opts)
    try:
        ino = log.create_file("/swapfile", pages * PAGE)
        rng = random.Random(seed)
        data = os.urandom(PAGE)
        for slot in range(pages):
            log.write(ino, slot * PAGE, data)
        for _ in range(int(pages * warmup)):
            log.write(ino, rng.randrange(pages) * PAGE, data)
        nodes0 = log.nodes_programmed
        prog0, host0 = log.device.programmed_bytes, log.device.host_bytes
        writes = int(pages * measure)
        began = time.perf_counter()
        for _ in range(writes):
            log.write(ino, rng.randrange(pages) * PAGE, data)
        seconds = time.perf_counter() - began
        node_wa = (log.nodes_programmed - nodes0) / writes
        byte_wa = (log.device.programmed_bytes - prog0) / (log.device.host_bytes - host0)
    finally:
        log.close()
        _remove(path)
    return {
        "utilisation": utilisation,
        "policy": policy,
        "pages": pages,
        "node_capacity": capacity,
        "writes": writes,
        "wa_nodes": node_wa,
        "wa_bytes": byte_wa,
        "wa_greedy_analytic": greedy_wa_large_block(utilisation),
        "seconds": seconds,
    }


def bench_wear(
    directory: Path,
    *,
    blocks: int = 64,
    erase_block: int = 65536,
    utilisation: float = 0.8,
    device_writes: float = 20.0,
    hot_fraction: float = 0.2,
    hot_share: float = 0.8,
    seed: int = 2,
) -> dict[str, Any]:
    """Write ``device_writes`` times the device size; 80 % of writes to 20 % of the slots."""
    path = directory / "wear.img"
    geometry = Geometry(blocks * erase_block, erase_block)
    pages = int(blocks * _nodes_per_block(erase_block) * utilisation)
    log = FlashLog.format(str(path), geometry)
    try:
        ino = log.create_file("/swapfile", pages * PAGE)
        rng = random.Random(seed)
        hot = max(1, int(pages * hot_fraction))
        data = os.urandom(PAGE)
        for slot in range(pages):
            log.write(ino, slot * PAGE, data)
        writes = int(device_writes * geometry.size / PAGE)
        began = time.perf_counter()
        for _ in range(writes):
            if rng.random() < hot_share:
                slot = rng.randrange(hot)
            else:
                slot = hot + rng.randrange(pages - hot)
            log.write(ino, slot * PAGE, data)
        seconds = time.perf_counter() - began
        counts = [c for b, c in enumerate(log.device.erase_counts()) if not log.device.is_bad(b)]
    finally:
        log.close()
        _remove(path)
    mean = statistics.fmean(counts)
    return {
        "pages": pages,
        "writes": writes,
        "device_sizes_written": writes * PAGE / geometry.size,
        "erase_min": min(counts),
        "erase_mean": mean,
        "erase_max": max(counts),
        "max_over_mean": max(counts) / mean,
        "seconds": seconds,
    }


def bench_mount(
    directory: Path,
    *,
    size: int = 64 << 20,
    erase_block: int = 65536,
    fill: float = 0.75,
    repeat: int = 3,
) -> dict[str, Any]:
    """Mount an image holding ``fill`` of its node capacity, with and without summaries."""
    path = directory / "mount.img"
    geometry = Geometry(size, erase_block)
    pages = int(geometry.blocks * _nodes_per_block(erase_block) * fill)
    log = FlashLog.format(str(path), geometry)
    try:
        ino = log.create_file("/swapfile", pages * PAGE)
        for slot in range(pages):
            log.write(ino, slot * PAGE, os.urandom(PAGE))
        log.close()
        labels = ("summary", "scan", "summary+index", "scan+index")
        times: dict[str, list[float]] = {k: [] for k in labels}
        cpu: dict[str, list[float]] = {k: [] for k in labels}
        read_bytes: dict[str, int] = {}
        for _ in range(repeat):
            for label, summaries in (("summary", True), ("scan", False)):
                began, began_cpu = time.perf_counter(), time.process_time()
                mounted = FlashLog.open(
                    str(path), options=LogOptions(summaries=summaries), readonly=True
                )
                scanned, scanned_cpu = time.perf_counter(), time.process_time()
                mounted.build_index()
                built, built_cpu = time.perf_counter(), time.process_time()
                read_bytes[label] = mounted.device.bytes_read
                mounted.close()
                times[label].append(scanned - began)
                times[label + "+index"].append(built - began)
                cpu[label].append(scanned_cpu - began_cpu)
                cpu[label + "+index"].append(built_cpu - began_cpu)
    finally:
        _remove(path)
    best = {k: min(v) for k, v in times.items()}
    mid = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "cpu_s_summary": mid["summary"],
        "cpu_s_full_scan": mid["scan"],
        "cpu_speedup": mid["scan"] / mid["summary"],
        "cpu_speedup_with_index": mid["scan+index"] / mid["summary+index"],
        "image_bytes": size,
        "pages": pages,
        "mount_s_summary": best["summary"],
        "mount_s_full_scan": best["scan"],
        "speedup": best["scan"] / best["summary"],
        "mount_index_s_summary": best["summary+index"],
        "mount_index_s_full_scan": best["scan+index"],
        "speedup_with_index": best["scan+index"] / best["summary+index"],
        "bytes_read_summary": read_bytes["summary"],
        "bytes_read_full_scan": read_bytes["scan"],
    }


async def _swap_out_run(url: str, pages: int, create: bool) -> tuple[float, list[int]]:
    host = PluginHost()
    area = await host.activate(url, create=CreateRequest(pages) if create else None)
    block = os.urandom(PAGE * BATCH)
    views = [block[i * PAGE : (i + 1) * PAGE] for i in range(BATCH)]
    lat: list[int] = []
    began = time.perf_counter()
    for slot in range(0, pages, BATCH):
        t0 = time.perf_counter_ns()
        await area.swap_out(slot, views[: min(BATCH, pages - slot)])
        lat.append(time.perf_counter_ns() - t0)
    seconds = time.perf_counter() - began
    await area.deactivate()
    return seconds, lat


def _result(
    target: str, workload: str, pages: int, seconds: float, lat: list[int], **extra: Any
) -> dict[str, Any]:
    lat = sorted(lat)
    return {
        "target": target,
        "kind": "backend",
        "workload": workload,
        "page_size": PAGE,
        "pages": pages,
        "seconds": seconds,
        "pages_per_s": pages / seconds,
        "bw_bytes": pages * PAGE / seconds,
        "lat_ns": {
            "p50": lat[len(lat) // 2],
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max": lat[-1],
        },
        **extra,
    }


def bench_swap_out(directory: Path, *, pages: int = 8192, repeat: int = 3) -> list[dict[str, Any]]:
    """Sequential swap-out (requests of 64 pages), flashlog and file on the same directory.

    flashlog: the first pass fills a fresh log; the second pass overwrites every slot, so
    garbage collection runs (its steady state).  Best of ``repeat`` for each.
    """
    return asyncio.run(_bench_swap_out(Path(directory), pages, repeat))


async def _bench_swap_out(directory: Path, pages: int, repeat: int) -> list[dict[str, Any]]:
    best: dict[str, tuple[float, list[int]]] = {}

    def keep(name: str, run: tuple[float, list[int]]) -> None:
        if name not in best or run[0] < best[name][0]:
            best[name] = run

    for i in range(repeat):
        image = directory / f"seq-{i}.img"
        swap = directory / f"seq-{i}.swap"
        keep("flashlog:fill", await _swap_out_run(f"flashlog://{image}", pages, True))
        keep("flashlog:overwrite", await _swap_out_run(f"flashlog://{image}", pages, False))
        keep("file", await _swap_out_run(f"file://{swap}", pages, True))
        _remove(image)
        swap.unlink()
    out = []
    for name, (seconds, lat) in best.items():
        target, _, phase = name.partition(":")
        out.append(
            _result(target, "seq-swap-out", pages, seconds, lat, phase=phase or "first-write")
        )
    return out


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".flash")):
        if p.exists():
            p.unlink()


# --- swapio bench -----------------------------------------------------------------------


@asynccontextmanager
async def _place(site: BenchSite) -> AsyncIterator[str]:
    image = site.directory / f"flash-{site.uid}.img"
    try:
        yield f"flashlog://{image}?name=/swapfile"
    finally:
        remove_image(str(image))


async def _remove_area(url: str) -> None:
    remove_image(Location.parse(url).path)


def _programmed(area: SwapArea) -> int:
    """Bytes programmed on the simulated flash so far (node headers, GC copies, summaries)."""
    flash: FlashArea = area.private
    return flash.log.device.programmed_bytes


def targets() -> list[BenchTarget]:
    """The ``flashlog`` target; its wear is the device's own programmed-bytes count."""
    return [
        BenchTarget(
            name="flashlog",
            backend="flashlog",
            durability=Durability.DURABLE,
            place=_place,
            summary="a JFFS2-format log on a simulated NOR flash image",
            remove=_remove_area,
            medium_bytes=_programmed,
        )
    ]
