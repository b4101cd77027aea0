"""Workloads through :mod:`swapio.mapping`: ``map-50`` and ``map-seq`` (run on request, ``-w``).

* ``map-50``: a region of ``--pages`` pages with half of it resident, every page written
  once (untimed), then ``--ops`` one-byte accesses of uniformly random pages, one in four a
  write, as ``pager-50`` does through the byte API.  The figure is **faults per second**:
  the missing faults the handler resolved over the timed accesses' wall time (hits included,
  as a program sees them).
* ``map-seq``: a float64 array of ``--pages`` pages with a quarter of it resident, written
  through the mapping (untimed), reopened, and summed with ``numpy.sum`` — then the same file
  summed through ``numpy.memmap`` in the same run, the peer the figure is a ratio to
  (``memmap_ratio``).  On a file area only (the file is in the page cache for both).

The mapping builds its own area beside the target's (its handler process activates it),
named by the target's plugin (``BenchTarget.mapped``); ``map-seq`` needs the file behind it
too.  Targets whose plugin names none, a machine without userfaultfd, or one without numpy:
the workload is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence
from pathlib import Path

from swapio.bench.paging import WRITE_SHARE, Unavailable
from swapio.bench.results import Result
from swapio.bench.targets import Target
from swapio.bench.workloads import BenchConfig, Workload
from swapio.errors import UsageError

#: Why a target whose plugin declares no ``BenchTarget.mapped`` skips the mapping workloads.
NOT_MAPPED = (
    "its plugin names no area beside it for the mapping (BenchTarget.mapped); "
    "examples/numpy_out_of_core.py --url maps any area"
)


def _sibling(target: Target, tag: str) -> tuple[str, Path | None]:
    """A URL for the mapping's own area beside ``target``'s, and the file to remove after
    (the plugin's ``BenchTarget.mapped``)."""
    if target.area is None:
        raise Unavailable("mapping workloads need a swap area (peers have none)")
    if target.mapped is None:
        raise Unavailable(NOT_MAPPED)
    return target.mapped(tag)


def _imports() -> None:
    try:
        import numpy  # noqa: F401, PLC0415 - optional for the rest of the bench
    except ImportError as exc:
        raise Unavailable("numpy not installed (pip install numpy)") from exc
    from swapio.mapping import MappingError, write_protect_available  # noqa: PLC0415

    try:
        write_protect_available()
    except MappingError as exc:  # UserfaultfdUnavailable names the cause
        raise Unavailable(str(exc)) from exc


async def map_50(target: Target, cfg: BenchConfig) -> Result:
    """Random one-byte accesses at half residency through the mapping (see the module)."""
    _imports()
    import numpy as np  # noqa: PLC0415

    from swapio.mapping import Mapping  # noqa: PLC0415

    url, path = _sibling(target, "map50")
    pages = cfg.pages
    resident = max(1, pages // 2)
    rng = random.Random(cfg.seed + 50)
    ps = cfg.page_size
    try:
        with Mapping(url, resident=resident * ps, create=pages, page_size=ps) as m:
            a = np.frombuffer(m.buffer, dtype=np.uint8)
            a[::ps] = 1  # every page stored on the area
            before = m.stats()["resolver"]
            samples: list[int] = []
            start = time.perf_counter()
            deadline = start + cfg.seconds
            for _ in range(cfg.ops):
                offset = rng.randrange(pages) * ps
                t0 = time.perf_counter_ns()
                if rng.random() < WRITE_SHARE:
                    a[offset] = 2
                else:
                    int(a[offset])
                samples.append(time.perf_counter_ns() - t0)
                if time.perf_counter() > deadline:
                    break
            seconds = time.perf_counter() - start
            after = m.stats()["resolver"]
            del a
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
    faults = after["missing_faults"] - before["missing_faults"]
    return Result(
        target=target.name,
        kind=target.kind,
        workload="map-50",
        page_size=ps,
        pages=len(samples),
        seconds=seconds,
        samples=tuple(samples),
        extra={
            "faults": faults,
            "faults_per_s": round(faults / seconds) if seconds > 0 else 0,
            "wp_faults": after["wp_faults"] - before["wp_faults"],
            "resident_pages": resident,
            "evictions": after["evictions"] - before["evictions"],
            "dirty_evictions": after["dirty_evictions"] - before["dirty_evictions"],
        },
    )


async def map_seq(target: Target, cfg: BenchConfig) -> Result:
    """``numpy.sum`` of an array 4x the budget through the mapping, then through
    ``numpy.memmap`` of the same file (see the module)."""
    _imports()
    import numpy as np  # noqa: PLC0415

    from swapio.mapping import Mapping  # noqa: PLC0415

    url, path = _sibling(target, "mapseq")
    if path is None:
        raise Unavailable("map-seq compares with numpy.memmap of the same file: this area has none")
    pages = cfg.pages
    ps = cfg.page_size
    resident = max(1, pages // 4)
    try:
        with Mapping(url, resident=resident * ps, create=pages, page_size=ps) as m:
            np.frombuffer(m.buffer, dtype=np.float64)[:] = 1.0
        with Mapping(url, resident=resident * ps) as m:
            a = np.frombuffer(m.buffer, dtype=np.float64)
            t0 = time.perf_counter()
            total = float(a.sum())
            seconds = time.perf_counter() - t0
            stats = m.stats()["resolver"]
            del a
        ref = np.memmap(path, dtype=np.float64, mode="r")
        t0 = time.perf_counter()
        ref_total = float(ref.sum())
        memmap_seconds = time.perf_counter() - t0
        del ref
        if ref_total != total:
            raise UsageError(f"map-seq: the mapping summed {total}, numpy.memmap {ref_total}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    mib = pages * ps / 2**20
    extra: dict[str, object] = {
        "resident_pages": resident,
        "faults": stats["missing_faults"],
        "readahead_pages": stats["readahead_pages"],
        "mib_s": round(mib / seconds, 1),
        "memmap_mib_s": round(mib / memmap_seconds, 1),
        "memmap_ratio": round(memmap_seconds / seconds, 4),
    }
    return Result(
        target=target.name,
        kind=target.kind,
        workload="map-seq",
        page_size=ps,
        pages=pages,
        seconds=seconds,
        extra=extra,
    )


#: Run on request only (``swapio bench -w map-50,map-seq``): each starts handler processes.
MAPPING_WORKLOADS: dict[str, Workload] = {"map-50": map_50, "map-seq": map_seq}


def mapping_lines(results: Sequence[Result]) -> str:
    """The mapping workloads' own figures: faults/s, and the ratio to ``numpy.memmap``."""
    lines = []
    for r in results:
        if r.workload == "map-50":
            lines.append(
                f"map-50 {r.target}: {r.extra.get('faults_per_s', 0):,} faults/s "
                f"({r.extra.get('faults')} faults in {r.seconds:.3f} s)"
            )
        elif r.workload == "map-seq" and "memmap_ratio" in r.extra:
            lines.append(
                f"map-seq {r.target}: {r.extra['memmap_ratio']:.3f}x numpy.memmap of the same "
                f"file ({r.extra['mib_s']:,} vs {r.extra['memmap_mib_s']:,} MiB/s)"
            )
    return "\n".join(lines)
