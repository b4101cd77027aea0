"""A numpy array four times larger than its memory budget, paged through swapio.mapping.

The array lives in a swap area (a file by default; any swapio URL, e.g. an NFS file served
without a mount); at most ``--resident`` MiB of it are in this process's memory at once.
Plain numpy code reads and writes it: a handler process serves its pages through
userfaultfd.  The same updates run on an in-RAM copy and both results are compared.

    python examples/numpy_out_of_core.py [--resident-mib 16] [--url file:///var/tmp/ooc.swap]

Exit status: 0 when the paged array matches the in-RAM one, 1 when it does not, 2 for bad
arguments, 3 when the area or userfaultfd is unavailable (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from swapio.errors import SwapioError, UsageError
from swapio.mapping import Mapping

PAGE = 4096


def run(url: str, resident_mib: int, updates: int, seed: int) -> int:
    resident = resident_mib << 20
    pages = 4 * resident // PAGE  # the array: 4x the resident budget
    rng = np.random.default_rng(seed)
    peak = 0
    with Mapping(url, resident=resident, create=pages) as m:
        a = np.frombuffer(m.buffer, dtype=np.float64)
        ref = np.zeros(a.size, dtype=np.float64)
        t0 = time.perf_counter()
        a[:] = np.arange(a.size, dtype=np.float64)  # sequential fill
        ref[:] = np.arange(a.size, dtype=np.float64)
        for _ in range(10):  # random updates, in batches
            idx = rng.integers(0, a.size, updates // 10)
            vals = rng.standard_normal(idx.size)
            np.add.at(a, idx, vals)
            np.add.at(ref, idx, vals)
            peak = max(peak, m.region_rss())
        total, expect = float(a.sum()), float(ref.sum())  # a reduction over everything
        same = bool(np.array_equal(a, ref))
        peak = max(peak, m.region_rss())
        m.sync()
        elapsed = time.perf_counter() - t0
        stats = m.stats()["resolver"]
        del a
    print(f"array {pages * PAGE >> 20} MiB, resident budget {resident_mib} MiB, url {url}")
    print(f"sum {total!r} (in RAM {expect!r}); arrays equal: {same}")
    print(
        f"peak region RSS {peak >> 10} KiB; {stats['missing_faults']} missing faults, "
        f"{stats['wp_faults']} write-protect faults, {stats['evictions']} evictions "
        f"({stats['dirty_evictions']} dirty); {elapsed:.2f} s"
    )
    return 0 if same and total == expect else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="swap area URL (default: a file in the temp dir)")
    parser.add_argument("--resident-mib", type=int, default=16)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.resident_mib < 1 or args.updates < 10:
        print("numpy_out_of_core: error: --resident-mib >= 1 and --updates >= 10", file=sys.stderr)
        return 2
    url = args.url
    path = None
    if url is None:
        path = os.path.join(tempfile.gettempdir(), f"swapio-ooc-{os.getpid()}.swap")
        url = f"file://{path}"
    try:
        return run(url, args.resident_mib, args.updates, args.seed)
    except UsageError as exc:
        print(f"numpy_out_of_core: error: {exc}", file=sys.stderr)
        return 2
    except SwapioError as exc:
        print(f"numpy_out_of_core: error: {exc}", file=sys.stderr)
        return 3
    finally:
        if path is not None and os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
