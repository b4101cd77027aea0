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


def random_faults(
    pages: int,
    resident_pages: int,
    accesses: int,
    *,
    colocate: bool | None = None,
    poll: bool | None = None,
) -> dict[str, float]:
    """Populate a memory area, then read one byte of random pages (mostly missing)."""
    with Mapping(
        "memory://bench", resident=resident_pages * PAGE, create=pages, colocate=colocate, poll=poll
    ) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        a[::PAGE] = 1  # every page stored on the area
        idx = np.random.default_rng(1).integers(0, pages, accesses) * PAGE
        before = m.stats()
        t0 = time.perf_counter()
        total = 0
        for i in idx.tolist():
            total += int(a[i])
        elapsed = time.perf_counter() - t0
        after = m.stats()
        faults = after["resolver"]["missing_faults"] - before["resolver"]["missing_faults"]
        cpu = after["handler_cpu_s"] - before["handler_cpu_s"]
        del a
    return {
        "faults": faults,
        "seconds": elapsed,
        "faults_per_s": faults / elapsed,
        "handler_cpu_us_per_fault": cpu / faults * 1e6,
    }


def trivial_handler(pages: int, *, colocate: bool = False, poll: bool = False) -> dict[str, float]:
    """The peer: a bare handler (forked, blocking ``read``, one ``UFFDIO_COPY`` of a static
    page per fault) on the same memfd + MISSING|WP registration; one read per page.  With
    ``colocate`` it runs pinned to the CPU this process last ran on (as the mapping's
    handler does with ``colocate=True``); with ``poll`` it never blocks (non-blocking
    ``read`` in a loop): the ceiling of a polling handler on this machine."""
    import ctypes  # noqa: PLC0415 - only this peer needs them

    from swapio.mapping import _abi, _affinity, _region, _uffd  # noqa: PLC0415
    from swapio.mapping._abi import CopyMode, Feature, RegisterMode  # noqa: PLC0415

    fd = _region.new_memfd(pages * PAGE)
    mm, addr = _region.map_shared(fd, pages * PAGE)
    uffd = _uffd.create()
    want = Feature.PAGEFAULT_FLAG_WP | Feature.WP_HUGETLBFS_SHMEM | Feature.MISSING_SHMEM
    _uffd.api(uffd, want & _uffd.supported_features())
    _uffd.register(uffd, addr, pages * PAGE, RegisterMode.MISSING | RegisterMode.WP)
    cpu = _affinity.last_cpu(os.getpid()) if colocate else None
    pid = os.fork()
    if pid == 0:
        if cpu is not None:
            _affinity.pin_thread(cpu)
        os.set_blocking(uffd, not poll)
        src = ctypes.create_string_buffer(PAGE)
        while True:
            try:
                data = os.read(uffd, 32 * 64)
            except BlockingIOError:
                continue
            for msg in _abi.decode_messages(data):
                assert isinstance(msg, _abi.Pagefault)
                dst = msg.address & ~(PAGE - 1)
                _uffd.copy(uffd, dst, ctypes.addressof(src), PAGE, CopyMode.WP)
    os.close(uffd)
    a = np.frombuffer(mm, dtype=np.uint8)
    idx = (np.random.default_rng(1).permutation(pages) * PAGE).tolist()
    t0 = time.perf_counter()
    total = 0
    for i in idx:
        total += int(a[i])
    elapsed = time.perf_counter() - t0
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    del a
    return {"faults": pages, "seconds": elapsed, "faults_per_s": pages / elapsed}


def sequential_scan(path: str, pages: int, resident_pages: int) -> dict[str, float]:
    """Sum a float64 array 4x the budget through the mapping, then through numpy.memmap."""
    url = f"file://{path}"
    with Mapping(url, resident=resident_pages * PAGE, create=pages) as m:
        np.frombuffer(m.buffer, dtype=np.float64)[:] = 1.0
    with Mapping(url, resident=resident_pages * PAGE) as m:
        a = np.frombuffer(m.buffer, dtype=np.float64)
        cpu0 = m.stats()["handler_cpu_s"]
        t0 = time.perf_counter()
        s_map = float(a.sum())
        t_map = time.perf_counter() - t0
        cpu = m.stats()["handler_cpu_s"] - cpu0
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
        "handler_cpu_us_per_page": cpu / pages * 1e6,
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
        "random_faults_memory_no_poll": random_faults(
            args.pages, args.pages // 16, 20000, poll=False
        ),
        "random_faults_memory_no_poll_colocated": random_faults(
            args.pages, args.pages // 16, 20000, poll=False, colocate=True
        ),
        "random_faults_trivial_handler": trivial_handler(args.pages),
        "random_faults_trivial_handler_polling": trivial_handler(args.pages, poll=True),
        "random_faults_trivial_handler_colocated": trivial_handler(args.pages, colocate=True),
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
