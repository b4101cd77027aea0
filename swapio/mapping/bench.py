"""Mapping figures: random 4 KiB faults (memory area) and a sequential scan (file area) beside
``numpy.memmap`` of the same file.  ``python -m swapio.mapping.bench [--dir DIR]``.

Prints one JSON document.  These are measurements, not tests; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from swapio.mapping import Mapping

PAGE = 4096


def random_faults(pages: int, resident_pages: int, accesses: int) -> dict[str, float]:
    """Populate a memory area, then read one byte of random pages (mostly missing)."""
    with Mapping("memory://bench", resident=resident_pages * PAGE, create=pages) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        a[::PAGE] = 1  # every page stored on the area
        idx = np.random.default_rng(1).integers(0, pages, accesses) * PAGE
        before = m.stats()["resolver"]["missing_faults"]
        t0 = time.perf_counter()
        total = 0
        for i in idx.tolist():
            total += a[i]
        elapsed = time.perf_counter() - t0
        faults = m.stats()["resolver"]["missing_faults"] - before
        del a
    return {"faults": faults, "seconds": elapsed, "faults_per_s": faults / elapsed}


def sequential_scan(path: str, pages: int, resident_pages: int) -> dict[str, float]:
    """Sum a float64 array 4x the budget through the mapping, then through numpy.memmap."""
    url = f"file://{path}"
    with Mapping(url, resident=resident_pages * PAGE, create=pages) as m:
        np.frombuffer(m.buffer, dtype=np.float64)[:] = 1.0
    with Mapping(url, resident=resident_pages * PAGE) as m:
        a = np.frombuffer(m.buffer, dtype=np.float64)
        t0 = time.perf_counter()
        s_map = float(a.sum())
        t_map = time.perf_counter() - t0
        del a
    mm = np.memmap(path, dtype=np.float64, mode="r")
    t0 = time.perf_counter()
    s_ref = float(mm.sum())
    t_ref = time.perf_counter() - t0
    del mm
    assert s_map == s_ref
    mib = pages * PAGE / 2**20
    return {
        "mib": mib,
        "mapping_mib_s": mib / t_map,
        "memmap_mib_s": mib / t_ref,
        "ratio": t_ref / t_map,
    }


def main() -> None:
    """Run both and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--pages", type=int, default=16384)
    args = parser.parse_args()
    load_before = os.getloadavg()
    out: dict[str, object] = {
        "random_faults_memory": random_faults(args.pages, args.pages // 16, 20000),
    }
    path = os.path.join(args.dir, f"swapio-map-bench-{os.getpid()}.swap")
    try:
        out["sequential_scan_file"] = sequential_scan(path, args.pages, args.pages // 4)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    out["loadavg_before"] = load_before
    out["loadavg_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
