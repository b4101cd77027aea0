"""Benchmarks of the bitmap: resync against its peers, and the write-path overhead.

:func:`run_benchmarks` returns result dicts in the ``swapio bench`` shape (``target``,
``kind``, ``workload``, ``page_size``, ``pages``, ``seconds``, ``pages_per_s``, ``bw_bytes``,
``lat_ns`` with ``p50``/``p99``/``max``, plus workload-specific keys), measured in one run:

* ``resync-1pct``: a mirror of two image files with 1% of its chunks dirty, scattered;
  ``swapio`` resync (target ``mirror-resync``) vs ``cp`` of the whole leg (peer ``cp``)
  vs ``os.copy_file_range`` of only the dirty chunks, then one ``fdatasync`` (peer
  ``copy_file_range``; the number without the sync is kept as ``seconds_nosync``).
* ``write-seq-4k`` / ``write-rand-4k``: 4 KiB writes through the mirror backend with the
  bitmap (``mirror+bitmap``) and with the bitmap switched off (``mirror-nobitmap``), legs
  and bitmap on durable file areas.

``benchmarks/bench_resync.py`` is the command-line front end; docs/bitmap-and-mirror.md
records figures and the command.  :func:`targets` is the ``mirror`` target of
``swapio bench`` (the ``swapio_bench`` hook), with ``resync-1pct`` as its own workload.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from swapio.area import CreateRequest
from swapio.bench.hook import (
    BenchSite,
    BenchTarget,
    BenchWorkload,
    Durability,
    Kind,
    Latency,
    Result,
)
from swapio.location import Location
from swapio.plugins import PluginHost
from swapio_mdraid._config import MirrorConfig
from swapio_mdraid._format import Bitmap
from swapio_mdraid._locate import activate, local_path
from swapio_mdraid._mirror import Mirror
from swapio_mdraid._resync import resync
from swapio_mdraid._store import BitmapStore

PAGE = 4096
GiB = 1 << 30


def _latency(samples: Sequence[int]) -> dict[str, int]:
    if not samples:
        return {"p50": 0, "p99": 0, "max": 0}
    ordered = sorted(samples)

    def rank(pct: float) -> int:
        return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]

    return {"p50": rank(50), "p99": rank(99), "max": ordered[-1]}


def result(
    target: str,
    kind: str,
    workload: str,
    nbytes: int,
    seconds: float,
    samples: Sequence[int] = (),
    **extra: Any,
) -> dict[str, Any]:
    """One result record in the ``swapio bench`` JSON shape."""
    pages = nbytes // PAGE
    rate = pages / seconds if seconds > 0 else 0.0
    doc: dict[str, Any] = {
        "target": target,
        "kind": kind,
        "workload": workload,
        "page_size": PAGE,
        "pages": pages,
        "seconds": round(seconds, 6),
        "pages_per_s": round(rate, 1),
        "bw_bytes": round(rate * PAGE),
        "lat_ns": _latency(samples),
    }
    doc.update(extra)
    return doc


# --- resync ---------------------------------------------------------------------------


def _fill(path: Path, size: int, seed: int) -> None:
    block = random.Random(seed).randbytes(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())


def _scatter(chunks: int, fraction: float, seed: int) -> list[int]:
    count = max(1, round(chunks * fraction))
    return sorted(random.Random(seed).sample(range(chunks), count))


def _dirty_source(source: Path, dirty: list[int], chunk: int, seed: int) -> None:
    rng = random.Random(seed)
    fd = os.open(source, os.O_WRONLY)
    try:
        for c in dirty:
            os.pwrite(fd, rng.randbytes(chunk), c * chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bitmap(path: Path, size: int, chunk: int, dirty: list[int]) -> None:
    bitmap = Bitmap.create(sync_size_bytes=size, chunk_size=chunk, all_dirty=False)
    for c in dirty:
        bitmap.set(c)
    image = bitmap.encode()
    path.write_bytes(image + bytes(-len(image) % PAGE))


async def _swapio_resync(bitmap: Path, source: Path, target: Path) -> tuple[float, list[int], int]:
    host = PluginHost()
    store = await BitmapStore.open(host, str(bitmap))
    legs = [await activate(host, str(source)), await activate(host, str(target))]
    stamps: list[int] = []

    def progress(done: int, total: int) -> None:
        stamps.append(time.perf_counter_ns())

    try:
        start = time.perf_counter_ns()
        report = await resync(store, legs[0], legs[1:], progress=progress)
        seconds = (time.perf_counter_ns() - start) / 1e9
    finally:
        for leg in legs:
            await leg.deactivate()
        await store.close()
    gaps = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
    return seconds, gaps, report.bytes_copied


def _copy_file_range(
    source: Path, target: Path, dirty: list[int], chunk: int
) -> tuple[float, float]:
    src = os.open(source, os.O_RDONLY)
    dst = os.open(target, os.O_WRONLY)
    try:
        start = time.perf_counter()
        for c in dirty:
            offset = c * chunk
            left = chunk
            while left:
                done = os.copy_file_range(
                    src, dst, left, offset + chunk - left, offset + chunk - left
                )
                if done == 0:
                    break
                left -= done
        nosync = time.perf_counter() - start
        os.fdatasync(dst)
        return time.perf_counter() - start, nosync
    finally:
        os.close(src)
        os.close(dst)


def _cp(source: Path, target: Path) -> tuple[float, float]:
    """``cp`` of the whole leg; returns (seconds, seconds including an fdatasync of the copy)."""
    cp = shutil.which("cp")
    if cp is None:
        raise RuntimeError("cp is not installed")
    start = time.perf_counter()
    subprocess.run([cp, str(source), str(target)], check=True)
    plain = time.perf_counter() - start
    fd = os.open(target, os.O_WRONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
    return plain, time.perf_counter() - start


def bench_resync(
    directory: str | Path,
    *,
    size: int = GiB,
    chunk_size: int = 64 * 1024,
    dirty_fraction: float = 0.01,
    repeat: int = 3,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """Resync vs ``cp`` vs ``copy_file_range`` of the dirty chunks; median of ``repeat`` runs."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    leg0, leg1, bitmap, whole = root / "leg0.img", root / "leg1.img", root / "bm", root / "cp.img"
    _fill(leg0, size, seed)
    shutil.copyfile(leg0, leg1)
    chunks = size // chunk_size
    dirty = _scatter(chunks, dirty_fraction, seed)
    dirty_bytes = len(dirty) * chunk_size
    runs: dict[str, list[float]] = {
        "resync": [],
        "cfr": [],
        "cfr_nosync": [],
        "cp": [],
        "cp_sync": [],
    }
    gaps: list[int] = []
    try:
        for rep in range(repeat):
            # sync (untimed) before each: neither pays for the other's (or cp's) dirty pages
            _dirty_source(leg0, dirty, chunk_size, seed + rep + 1)
            os.sync()
            cfr, cfr_nosync = _copy_file_range(leg0, leg1, dirty, chunk_size)
            runs["cfr"].append(cfr)
            runs["cfr_nosync"].append(cfr_nosync)
            _dirty_source(leg0, dirty, chunk_size, seed + rep + 101)
            _write_bitmap(bitmap, size, chunk_size, dirty)
            os.sync()
            seconds, rep_gaps, copied = asyncio.run(_swapio_resync(bitmap, leg0, leg1))
            assert copied == dirty_bytes
            runs["resync"].append(seconds)
            gaps += rep_gaps
            if whole.exists():
                whole.unlink()
            os.sync()
            plain, synced = _cp(leg0, whole)
            runs["cp"].append(plain)
            runs["cp_sync"].append(synced)
        if leg0.read_bytes() != leg1.read_bytes():
            raise RuntimeError("legs differ after the resync benchmark")
    finally:
        for path in (leg0, leg1, bitmap, whole):
            path.unlink(missing_ok=True)
    median = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    common: dict[str, Any] = {
        "size": size,
        "chunk_size": chunk_size,
        "dirty_chunks": len(dirty),
        "chunks": chunks,
        "repeat": repeat,
    }
    return [
        result(
            "mirror-resync",
            "backend",
            "resync-1pct",
            dirty_bytes,
            median["resync"],
            gaps,
            runs=runs["resync"],
            **common,
        ),
        result(
            "copy_file_range",
            "peer",
            "resync-1pct",
            dirty_bytes,
            median["cfr"],
            seconds_nosync=round(median["cfr_nosync"], 6),
            runs=runs["cfr"],
            **common,
        ),
        result("cp", "peer", "resync-1pct", size, median["cp"], runs=runs["cp"], **common),
        result(
            "cp+fdatasync",
            "peer",
            "resync-1pct",
            size,
            median["cp_sync"],
            runs=runs["cp_sync"],
            **common,
        ),
    ]


# --- write path -----------------------------------------------------------------------


async def _write_run(
    root: Path, use_bitmap: bool, offsets: list[int], pages: int, chunk_size: int
) -> tuple[float, list[int], int]:
    tag = f"bm{chunk_size}" if use_bitmap else "nobm"
    url = (
        f"mirror://bench-{tag}?bitmap={root / (tag + '.bitmap')}"
        f"&leg0={root / (tag + '-0.img')}&leg1={root / (tag + '-1.img')}"
        f"&chunk_size={chunk_size}&daemon=0"
    )
    host = PluginHost()
    area = await host.activate(url, create=CreateRequest(pages, PAGE))
    mirror = area.private
    assert isinstance(mirror, Mirror)
    mirror.use_bitmap = use_bitmap
    data = random.Random(7).randbytes(PAGE)
    samples: list[int] = []
    flushes = mirror.store.writes
    try:
        start = time.perf_counter_ns()
        for slot in offsets:
            t0 = time.perf_counter_ns()
            await area.swap_out(slot, [data])
            samples.append(time.perf_counter_ns() - t0)
        seconds = (time.perf_counter_ns() - start) / 1e9
        flushes = mirror.store.writes - flushes
    finally:
        await area.deactivate()
        for suffix in (".bitmap", "-0.img", "-1.img"):
            (root / (tag + suffix)).unlink(missing_ok=True)
    return seconds, samples, flushes


def bench_write_path(
    directory: str | Path,
    *,
    area_size: int = 256 << 20,
    writes: int = 4000,
    chunk_size: int = 64 * 1024,
    extra_chunk_sizes: Sequence[int] = (4 << 20,),
    repeat: int = 3,
    seed: int = 3,
) -> list[dict[str, Any]]:
    """4 KiB writes through the mirror, with and without the bitmap, sequential and random.

    The bitmap runs at ``chunk_size`` and at each of ``extra_chunk_sizes`` (coarser chunks:
    fewer bitmap flushes, more to resync after a crash).

    The variants alternate ``repeat`` times (fresh legs each time); the median counts.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    pages = area_size // PAGE
    rng = random.Random(seed)
    patterns = {
        "write-seq-4k": [i % pages for i in range(writes)],
        "write-rand-4k": [rng.randrange(pages) for _ in range(writes)],
    }
    variants = [("mirror-nobitmap", False, chunk_size), ("mirror+bitmap", True, chunk_size)]
    variants += [(f"mirror+bitmap-{c >> 10}K", True, c) for c in extra_chunk_sizes]
    out = []
    for workload, offsets in patterns.items():
        runs: dict[str, list[tuple[float, list[int], int]]] = {v[0]: [] for v in variants}
        for rep in range(repeat):
            order = variants if rep % 2 == 0 else variants[::-1]
            for target, use_bitmap, chunk in order:
                runs[target].append(
                    asyncio.run(_write_run(root, use_bitmap, offsets, pages, chunk))
                )
        for target, _, chunk in variants:
            ordered = sorted(runs[target], key=lambda run: run[0])
            seconds, samples, flushes = ordered[len(ordered) // 2]
            out.append(
                result(
                    target,
                    "backend",
                    workload,
                    writes * PAGE,
                    seconds,
                    samples,
                    chunk_size=chunk,
                    area_size=area_size,
                    runs=[round(run[0], 6) for run in runs[target]],
                    bitmap_page_writes=flushes,
                )
            )
    return out


def run_benchmarks(
    directory: str | Path, *, size: int = GiB, repeat: int = 3
) -> list[dict[str, Any]]:
    """Everything above, in one run: the function ``swapio bench`` can call."""
    return bench_resync(directory, size=size, repeat=repeat) + bench_write_path(
        directory, repeat=repeat
    )


# --- swapio bench -----------------------------------------------------------------------

#: Leg size of the resync comparison in ``swapio bench`` (small: the default run's budget).
BENCH_RESYNC_BYTES = 64 << 20
#: Durability of each resync row: what is on stable storage when it finishes.
RESYNC_DURABILITY = {
    "mirror-resync": Durability.DURABLE,
    "copy_file_range": Durability.DURABLE,
    "cp": Durability.PAGE_CACHE,
    "cp+fdatasync": Durability.DURABLE,
}


def mirror_url(directory: Path, tag: str, *, durable: bool = True) -> str:
    """A mirror of two file legs and a bitmap file in ``directory``.

    ``durable``: the legs say ``durable=1`` (the mirror is then durable; it ranks with
    ``file-durable``).  Without it the legs are the mirror's default, written back like
    ``file://`` without ``durable=1`` (page cache; it ranks with ``file``).  The bitmap is
    always durable and flushed before the data write, either way.
    """

    def q(path: Path, durable: bool) -> str:
        query = "?durable=1" if durable else ""
        return quote(f"file://{quote(str(path))}{query}", safe="")

    legs = [q(directory / f"{tag}-leg{i}.img", durable) for i in range(2)]
    bitmap = q(directory / f"{tag}.bitmap", True)
    return f"mirror://{tag}?bitmap={bitmap}&leg0={legs[0]}&leg1={legs[1]}"


def _parts(url: str) -> list[str]:
    config = MirrorConfig.from_location(Location.parse(url))
    paths = (local_path(part) for part in (config.bitmap, *config.legs))
    return [path for path in paths if path is not None]


def _placer(durable: bool) -> Callable[[BenchSite], AbstractAsyncContextManager[str]]:
    @asynccontextmanager
    async def place(site: BenchSite) -> AsyncIterator[str]:
        tag = f"bench-{site.uid}" if durable else f"bench-wb-{site.uid}"
        url = mirror_url(site.directory, tag, durable=durable)
        try:
            yield url
        finally:
            await _remove_area(url)

    return place


async def _remove_area(url: str) -> None:
    """Remove a mirror's bitmap and legs (those that are local files)."""
    for path in _parts(url):
        await asyncio.to_thread(Path(path).unlink, missing_ok=True)


def _as_result(doc: dict[str, Any]) -> Result:
    copied = doc["pages"] * doc["page_size"]
    extra = {
        k: v
        for k, v in doc.items()
        if k not in {"target", "kind", "workload", "page_size", "pages", "seconds",
                     "pages_per_s", "bw_bytes", "lat_ns", "runs"}
    }  # fmt: skip
    lat = doc["lat_ns"]
    return Result(
        target=doc["target"],
        kind=Kind(doc["kind"]),
        workload=doc["workload"],
        page_size=doc["page_size"],
        pages=doc["pages"],
        seconds=float(doc["seconds"]),
        extra={**extra, "bytes_copied": copied},
        reported=Latency(lat["p50"], lat["p99"], lat["max"]),
    )


async def _resync(site: BenchSite) -> list[Result]:
    """One resync-1pct comparison (the bench repeats it): 64 MiB legs, 1 % dirty."""
    docs = await asyncio.to_thread(
        bench_resync, site.directory / "resync", size=BENCH_RESYNC_BYTES, repeat=1
    )
    return [_as_result(doc) for doc in docs]


def targets() -> list[BenchTarget]:
    """``mirror`` (durable file legs, bitmap file) with its resync workload, and
    ``mirror-writeback`` (the mirror's default: write-back legs, the page cache)."""
    return [
        BenchTarget(
            name="mirror",
            backend="mirror",
            durability=Durability.DURABLE,
            place=_placer(durable=True),
            summary="RAID1 over two durable file legs with an md write-intent bitmap",
            workloads=(
                BenchWorkload(
                    "resync-1pct",
                    "resync of a 64 MiB mirror with 1 % of its 64 KiB chunks dirty, vs cp "
                    "of the whole leg and copy_file_range of the dirty chunks",
                    _resync,
                    RESYNC_DURABILITY,
                ),
            ),
            remove=_remove_area,
        ),
        BenchTarget(
            name="mirror-writeback",
            backend="mirror",
            durability=Durability.PAGE_CACHE,
            place=_placer(durable=False),
            summary="the same over write-back file legs (plain paths: page cache, like file)",
            remove=_remove_area,
        ),
    ]
