"""NFS backend benchmark: swapio against libnfs (``nfs-cp``) and pyNfsClient, same server, same run.

Workloads (issue 4):

* ``seq-out``: sequential swap-out of ``--mib`` MiB (default 256) in 4 KiB pages, merged into
  requests of ``--batch`` pages (default 256 = 1 MiB, the backend's maximum), ``--depth``
  requests in flight; each completes only after COMMIT (durable).  Peer: ``nfs-cp`` copying
  the same number of random bytes to a new file on the same export.
* ``rand-in``: random single-page swap-in at queue depth ``--qd`` (default 32), ``--ops``
  pages.  Peer: pyNfsClient reading random 4 KiB pages of the same file one at a time.

Run standalone (starts its own nfs-ganesha on loopback unless ``--nfs`` names an export)::

    python benchmarks/bench_nfs.py [--nfs 'nfs://127.0.0.1/EXPORT?nfsport=N&mountport=N']
                                   [--mib 256] [--ops 20000] [--qd 32] [--json]
                                   [--workload seq-out|rand-in] [--runs N]

``run_nfs_bench()`` returns the result dicts (keys ``target kind workload page_size pages
seconds pages_per_s bw_bytes lat_ns{p50,p99,max}``) for ``swapio bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from swapio.area import CreateRequest, SwapArea
from swapio.location import Location
from swapio.plugins import PluginHost

PAGE = 4096
Result = dict[str, Any]
WORKLOADS = ("seq-out", "rand-in")


def _lat(samples_ns: list[int]) -> dict[str, int]:
    if not samples_ns:
        return {"p50": 0, "p99": 0, "max": 0}
    s = sorted(samples_ns)
    return {
        "p50": s[len(s) // 2],
        "p99": s[min(len(s) - 1, (len(s) * 99) // 100)],
        "max": s[-1],
    }


def _result(
    target: str, kind: str, workload: str, pages: int, seconds: float, lat: list[int], **extra: Any
) -> Result:
    return {
        "target": target,
        "kind": kind,
        "workload": workload,
        "page_size": PAGE,
        "pages": pages,
        "seconds": seconds,
        "pages_per_s": pages / seconds if seconds > 0 else 0.0,
        "bw_bytes": int(pages * PAGE / seconds) if seconds > 0 else 0,
        "lat_ns": _lat(lat),
        **extra,
    }


def _file_url(export_url: str, name: str) -> str:
    loc = Location.parse(export_url)
    query = "&".join(f"{k}={v}" for k, v in loc.query.items())
    port = f":{loc.port}" if loc.port else ""
    base = loc.path.rstrip("/")
    return f"nfs://{loc.host}{port}{base}/{name}" + (f"?{query}" if query else "")


# ----------------------------------------------------------------- swapio


async def swapio_seq_out(area: SwapArea, pages: int, batch: int, depth: int, data: bytes) -> Result:
    view = memoryview(data)
    chunks = [
        [view[(i + k) * PAGE : (i + k + 1) * PAGE] for k in range(min(batch, pages - i))]
        for i in range(0, pages, batch)
    ]
    lat: list[int] = []
    sem = asyncio.Semaphore(depth)

    async def one(slot: int, bufs: list[memoryview]) -> None:
        async with sem:
            t = time.perf_counter_ns()
            await area.swap_out(slot, bufs)
            lat.append(time.perf_counter_ns() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i * batch, c) for i, c in enumerate(chunks)))
    seconds = time.perf_counter() - t0
    return _result(
        "nfs", "backend", "seq-out", pages, seconds, lat, batch=batch, qd=depth, latency_per="call"
    )


async def swapio_rand_in(area: SwapArea, ops: int, qd: int, seed: int = 1) -> Result:
    rnd = random.Random(seed)
    slots = iter([rnd.randrange(area.pages) for _ in range(ops)])
    lat: list[int] = []

    async def worker() -> None:
        buf = memoryview(bytearray(PAGE))
        for slot in slots:
            t = time.perf_counter_ns()
            await area.swap_in(slot, [buf])
            lat.append(time.perf_counter_ns() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(qd)))
    seconds = time.perf_counter() - t0
    return _result("nfs", "backend", "rand-in", ops, seconds, lat, qd=qd, latency_per="page")


# ----------------------------------------------------------------- peers


def nfs_cp_seq_out(export_url: str, data_file: Path, name: str) -> Result:
    """``nfs-cp`` (libnfs) copying ``data_file`` to a new file on the export."""
    tool = shutil.which("nfs-cp")
    if tool is None:
        raise RuntimeError("nfs-cp is missing: install Debian package libnfs-utils")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [tool, str(data_file), _file_url(export_url, name)], capture_output=True, check=False
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"nfs-cp failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    pages = data_file.stat().st_size // PAGE
    return _result("nfs-cp", "peer", "seq-out", pages, seconds, [int(seconds * 1e9)])


def pynfsclient_rand_in(export_url: str, name: str, file_pages: int, ops: int) -> Result:
    """pyNfsClient: random one-page READs, one at a time."""
    from pyNfsClient import Mount, NFSv3

    loc = Location.parse(export_url)
    nfsport = int(loc.query.get("nfsport") or loc.port or 2049)
    mountport = int(loc.query["mountport"])
    auth = {"flavor": 1, "machine_name": "bench", "uid": 0, "gid": 0, "aux_gid": [], "stamp": 1}
    mount = Mount(host=loc.host, port=mountport, timeout=30, auth=auth)
    mount.connect()
    try:
        res = mount.mnt(loc.path.rstrip("/"), auth)
        if res["status"] != 0:
            raise RuntimeError(f"pyNfsClient could not mount {loc.path}: {res}")
        root = res["mountinfo"]["fhandle"]
        nfs = NFSv3(loc.host, nfsport, 30, auth)
        nfs.connect()
        try:
            fh = nfs.lookup(root, name, auth)["resok"]["object"]["data"]
            rnd = random.Random(2)
            offsets = [rnd.randrange(file_pages) * PAGE for _ in range(ops)]
            lat: list[int] = []
            t0 = time.perf_counter()
            for off in offsets:
                t = time.perf_counter_ns()
                r = nfs.read(fh, off, PAGE, auth)
                lat.append(time.perf_counter_ns() - t)
                if r["status"] != 0 or len(r["resok"]["data"]) != PAGE:
                    raise RuntimeError(f"pyNfsClient READ failed: status {r['status']}")
            seconds = time.perf_counter() - t0
        finally:
            nfs.disconnect()
        mount.umnt(auth)
    finally:
        mount.disconnect()
    return _result("pynfsclient", "peer", "rand-in", ops, seconds, lat, qd=1, latency_per="page")


# ----------------------------------------------------------------- driver


async def _run_swapio(
    export_url: str,
    name: str,
    pages: int,
    batch: int,
    depth: int,
    ops: int,
    qd: int,
    data: bytes,
    nconnect: int,
    workloads: tuple[str, ...] = WORKLOADS,
) -> list[Result]:
    host = PluginHost()
    url = _file_url(export_url, name)
    if nconnect != 1:
        url += ("&" if "?" in url else "?") + f"nconnect={nconnect}"
    t0 = time.perf_counter()
    area = await host.activate(url, create=CreateRequest(pages, PAGE))
    create_s = time.perf_counter() - t0
    results: list[Result] = []
    try:
        if "seq-out" in workloads:
            out = await swapio_seq_out(area, pages, batch, depth, data)
            # the conservative figure: creating the swap file preallocates it (zeros over the
            # whole length, committed) before the first swap-out, so count that time too
            total = create_s + out["seconds"]
            with_create = _result(
                "nfs", "backend", "create+seq-out", pages, total, [], batch=batch, qd=depth
            )
            results += [out, with_create]
        if "rand-in" in workloads:
            results.append(await swapio_rand_in(area, ops, qd))
    finally:
        await area.deactivate()
    return results


def run_nfs_bench(
    export_url: str | None = None,
    *,
    mib: int = 256,
    batch: int = 256,
    depth: int = 8,
    ops: int = 20000,
    qd: int = 32,
    nconnect: int = 1,
    workdir: str | None = None,
    workloads: tuple[str, ...] = WORKLOADS,
) -> list[Result]:
    """Run both workloads and both peers; start a private nfs-ganesha when no URL is given.

    ``export_url`` names an exported directory: ``nfs://HOST/EXPORT?nfsport=N&mountport=N``.
    Returns swapio's results and the peers' (``kind`` ``backend`` / ``peer``), plus
    ``ratio`` entries (``kind`` ``ratio``, key ``ratio``) for ``seq-out-vs-nfs-cp``,
    ``create+seq-out-vs-nfs-cp`` and ``rand-in-vs-pynfsclient``.
    """
    server = None
    tmp = Path(tempfile.mkdtemp(prefix="swapio-bench-nfs-", dir=workdir))
    try:
        if export_url is None:
            from swapio_nfs.ganesha import GaneshaServer

            root = tmp / "server"
            root.mkdir()
            root.chmod(0o755)
            tmp.chmod(0o755)
            server = GaneshaServer(root)
            server.start()
            export_url = (
                f"nfs://127.0.0.1{server.export}?nfsport={server.nfsport}"
                f"&mountport={server.mountport}"
            )
        pages = mib * 1024 * 1024 // PAGE
        data = os.urandom(mib * 1024 * 1024)
        source = tmp / "source.bin"
        source.write_bytes(data)
        tag = f"{os.getpid()}-{time.time_ns()}"
        swap_name = f"bench-swap-{tag}"
        results = asyncio.run(
            _run_swapio(
                export_url, swap_name, pages, batch, depth, ops, qd, data, nconnect, workloads
            )
        )
        ratios: dict[str, float] = {}
        if "seq-out" in workloads:
            results.append(nfs_cp_seq_out(export_url, source, f"bench-cp-{tag}"))
            by = {(r["target"], r["workload"]): r for r in results}
            cp = max(1, by[("nfs-cp", "seq-out")]["bw_bytes"])
            ratios["seq-out-vs-nfs-cp"] = by[("nfs", "seq-out")]["bw_bytes"] / cp
            ratios["create+seq-out-vs-nfs-cp"] = by[("nfs", "create+seq-out")]["bw_bytes"] / cp
        if "rand-in" in workloads:
            results.append(pynfsclient_rand_in(export_url, swap_name, pages, min(ops, 20000)))
            by = {(r["target"], r["workload"]): r for r in results}
            ratios["rand-in-vs-pynfsclient"] = by[("nfs", "rand-in")]["pages_per_s"] / max(
                1e-9, by[("pynfsclient", "rand-in")]["pages_per_s"]
            )
        for workload, ratio in ratios.items():
            results.append({"target": "nfs", "kind": "ratio", "workload": workload, "ratio": ratio})
        if server is not None:
            for name in (swap_name, f"bench-cp-{tag}"):
                (server.export / name).unlink(missing_ok=True)
        return results
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _table(results: list[Result]) -> str:
    lines = [
        f"{'target':<12} {'workload':<24} {'pages/s':>10} {'MiB/s':>8} {'p50 us':>8} {'p99 us':>8}"
    ]
    for r in results:
        if r["kind"] == "ratio":
            lines.append(f"{'ratio':<12} {r['workload']:<24} {r['ratio']:>10.2f}x")
            continue
        lines.append(
            f"{r['target']:<12} {r['workload']:<24} {r['pages_per_s']:>10.0f} "
            f"{r['bw_bytes'] / 2**20:>8.1f} {r['lat_ns']['p50'] / 1e3:>8.0f} "
            f"{r['lat_ns']['p99'] / 1e3:>8.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nfs", help="export URL; default: start a private nfs-ganesha")
    parser.add_argument("--mib", type=int, default=256, help="seq-out size in MiB")
    parser.add_argument("--batch", type=int, default=256, help="pages per seq-out request")
    parser.add_argument("--depth", type=int, default=8, help="seq-out requests in flight")
    parser.add_argument("--ops", type=int, default=20000, help="rand-in pages")
    parser.add_argument("--qd", type=int, default=32, help="rand-in queue depth")
    parser.add_argument("--nconnect", type=int, default=1, help="TCP connections of the area")
    parser.add_argument(
        "--workload", action="append", choices=WORKLOADS, help="run only this (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole run N times")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    every: list[Result] = []
    for run in range(1, args.runs + 1):
        results = run_nfs_bench(
            args.nfs,
            mib=args.mib,
            batch=args.batch,
            depth=args.depth,
            ops=args.ops,
            qd=args.qd,
            nconnect=args.nconnect,
            workloads=tuple(args.workload or WORKLOADS),
        )
        load = os.getloadavg()
        for r in results:
            r["run"] = run
            r["loadavg"] = load
        every += results
        if not args.json:
            print(f"run {run}: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
            print(_table(results), flush=True)
    if args.json:
        print(json.dumps(every, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
