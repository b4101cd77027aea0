#!/usr/bin/env python3
"""Resync benchmark of the md bitmap (standalone): in process, and at the command line.

    python benchmarks/bench_resync.py [--dir /var/tmp] [--size 1G] [--repeat 5]
                                      [--chunk-size 64K] [--cli-only] [--json results.json]
    python benchmarks/bench_resync.py --write-path [--dir /var/tmp] [--repeat 5]
    python benchmarks/bench_resync.py --phases [--dir /var/tmp] [--repeat 5]

``--write-path`` instead measures the mirror's write path against the file backend in one
process, alternating: ``seq-out`` (64-page calls, one in flight, over 8192 pages) and
``rand-out`` (one-page calls at random slots, 32 in flight), on a mirror of two write-back
file legs (plain paths) and on a ``file://`` area, both page cache; wall time *and* the
process's CPU time per call, since on a shared machine the CPU figure is the steadier.

``--phases`` runs only the in-process comparison, with a timer around each phase of
``resync()`` (opening the copier, the copies, the barrier, the bitmap write), and prints,
per run, when each phase started and how long it took (ms from the start of ``resync()``),
next to the peer's ``copy_file_range`` calls and its ``fdatasync``.

In process (``swapio_mdraid.bench.bench_resync``): ``resync()`` of two legs with 1 % of
their chunks dirty against ``os.copy_file_range`` of exactly the dirty chunks plus one
``fdatasync``, the kernel-side floor.  At the command line: ``swapio bitmap resync`` (a new
process, start-up included) against ``cp`` of the whole leg followed by ``sync``; ``sync``
runs (untimed) before each, so neither pays for the other's dirty pages.

The CLI runs the ``swapio`` script installed next to this interpreter (not a pyenv shim
found on PATH, which adds its own start-up; both are measured among the start floors).  The
start floors — ``python -I -S -c pass``, ``python -c pass``, ``import asyncio, click,
pluggy``, ``swapio --version`` — are measured in the same run, with ``cp`` + ``sync`` over
each: no command that starts this interpreter can be faster than that ratio.

Prints one line per figure; the figures and the command are recorded in
docs/bitmap-and-mirror.md.
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

from swapio_mdraid.bench import _dirty_source, _fill, _scatter, _write_bitmap, bench_resync
from swapio_mdraid.cli import parse_size


def _timed(argv: list[str]) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def swapio_command() -> str:
    """The ``swapio`` script pip installed next to this interpreter (what a venv or pipx
    user runs), else the one on PATH.  On a pyenv machine PATH holds a bash *shim* that
    runs ``pyenv exec`` first (~0.13 s per command, measured by :func:`start_floors`)."""
    beside = Path(sys.executable).with_name("swapio")
    return str(beside) if beside.exists() else (shutil.which("swapio") or "swapio")


def start_floors(repeat: int) -> dict[str, float]:
    """Medians of what starting a command costs here, before it does anything: the
    interpreter (with and without ``site``), the import floor of issue 11, the swapio
    script, and the pyenv shim on PATH if there is one."""
    py = sys.executable
    argvs = {
        "python_-I_-S_-c_pass": [py, "-I", "-S", "-c", "pass"],
        "python_-c_pass": [py, "-c", "pass"],
        "import_asyncio_click_pluggy": [py, "-c", "import asyncio, click, pluggy"],
        "swapio_--version": [swapio_command(), "--version"],
    }
    shim = shutil.which("swapio")
    if shim and Path(shim).resolve() != Path(swapio_command()).resolve():
        argvs["swapio_--version_via_PATH"] = [shim, "--version"]
    out = {}
    for name, argv in argvs.items():
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            runs.append(time.perf_counter() - start)
        out[name] = sorted(runs)[len(runs) // 2]
    return out


def bench_cli(root: Path, size: int, chunk: int, repeat: int) -> dict[str, Any]:
    """``swapio bitmap resync`` vs ``cp`` + ``sync`` of the whole leg, ``repeat`` times."""
    a, b, bm, whole = root / "a.img", root / "b.img", root / "bm", root / "cp.img"
    _fill(a, size, 1)
    shutil.copyfile(a, b)
    dirty = _scatter(size // chunk, 0.01, 1)
    resync_runs: list[float] = []
    cp_runs: list[float] = []
    try:
        for rep in range(repeat):
            _dirty_source(a, dirty, chunk, rep + 7)
            _write_bitmap(bm, size, chunk, dirty)
            resync_runs.append(
                _timed([swapio_command(), "bitmap", "resync", str(bm), "--source", str(a),
                        "--target", str(b)])
            )  # fmt: skip
            whole.unlink(missing_ok=True)
            cp_runs.append(_timed(["sh", "-c", f"cp '{a}' '{whole}' && sync"]))
        if a.read_bytes() != b.read_bytes():
            raise RuntimeError("legs differ after the CLI resync")
    finally:
        for path in (a, b, bm, whole):
            path.unlink(missing_ok=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in (("resync", resync_runs), ("cp", cp_runs))}
    return {
        "size": size,
        "chunk_size": chunk,
        "dirty_chunks": len(dirty),
        "command": swapio_command(),
        "start_floors": start_floors(repeat),
        "resync_cli": med["resync"],
        "cp_sync": med["cp"],
        "resync_runs": resync_runs,
        "cp_sync_runs": cp_runs,
        "speedup": med["cp"] / med["resync"],
    }


async def _write_path_run(kind: str, root: Path, rounds: int) -> dict[str, float]:
    from swapio.area import CreateRequest
    from swapio.plugins import PluginHost

    pages = 8192
    d = str(root)
    url = (
        f"file://{d}/f.swap"
        if kind == "file"
        else f"mirror://wp?bitmap={d}/bm&leg0={d}/l0&leg1={d}/l1&daemon=0"
    )
    area = await PluginHost().activate(url, create=CreateRequest(pages))
    buf = bytes(4096 * 64)
    one = memoryview(bytes(4096))
    rng = random.Random(1)
    out: dict[str, float] = {}
    try:
        for s in range(0, pages, 64):  # first pass: fresh files, bits set (not measured)
            await area.write(s, buf)
        wall = time.perf_counter()
        cpu = time.process_time()
        for _ in range(rounds):
            for s in range(0, pages, 64):
                await area.write(s, buf)
        calls = rounds * pages // 64
        out["seq_wall_us"] = (time.perf_counter() - wall) / calls * 1e6
        out["seq_cpu_us"] = (time.process_time() - cpu) / calls * 1e6
        slots = iter([rng.randrange(pages) for _ in range(4096 * rounds)])

        async def worker() -> None:
            for s in slots:
                await area.swap_out(s, [one])

        wall = time.perf_counter()
        cpu = time.process_time()
        await asyncio.gather(*(worker() for _ in range(32)))
        out["rand_wall_us"] = (time.perf_counter() - wall) / (4096 * rounds) * 1e6
        out["rand_cpu_us"] = (time.process_time() - cpu) / (4096 * rounds) * 1e6
    finally:
        await area.deactivate()
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
    return out


def bench_write_path_cpu(root: Path, repeat: int) -> dict[str, Any]:
    """File vs write-back mirror, alternating ``repeat`` times; medians per figure."""
    runs: dict[str, list[dict[str, float]]] = {"file": [], "mirror": []}
    for _ in range(repeat):
        for kind in ("file", "mirror"):
            runs[kind].append(asyncio.run(_write_path_run(kind, root, 4)))
    med = {
        kind: {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in rs[0]}
        for kind, rs in runs.items()
    }
    return {"median": med, "runs": runs}


def bench_phases(root: Path, size: int, chunk: int, repeat: int) -> list[dict[str, Any]]:
    """``resync()`` against its peer, ``repeat`` times, with each phase of the resync timed."""
    from swapio_mdraid import _copier, _store
    from swapio_mdraid import bench as mdbench

    phases: list[tuple[str, float, float]] = []
    origin = [0.0]

    def timed(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await real(*args, **kwargs)
            finally:
                phases.append((name, start - origin[0], time.perf_counter() - start))

        setattr(owner, name, wrapper)

    timed(_copier._Copier, "open")
    timed(_copier._Copier, "copy_runs")
    timed(_copier._Target, "barrier")
    timed(_store.BitmapStore, "write_pages")
    real_resync = mdbench.resync

    async def resync(*args: Any, **kwargs: Any) -> Any:
        origin[0] = time.perf_counter()
        return await real_resync(*args, **kwargs)

    mdbench.resync = resync  # type: ignore[assignment]
    a, b, bm = root / "a.img", root / "b.img", root / "bm"
    _fill(a, size, 1)
    shutil.copyfile(a, b)
    dirty = _scatter(size // chunk, 0.01, 1)
    out = []
    try:
        for rep in range(repeat):
            _dirty_source(a, dirty, chunk, rep + 1)
            os.sync()
            peer, peer_nosync = mdbench._copy_file_range(a, b, dirty, chunk)
            _dirty_source(a, dirty, chunk, rep + 101)
            _write_bitmap(bm, size, chunk, dirty)
            os.sync()
            phases.clear()
            seconds, _, _ = asyncio.run(mdbench._swapio_resync(bm, a, b))
            out.append({
                "resync_ms": seconds * 1e3,
                "peer_ms": peer * 1e3,
                "peer_copies_ms": peer_nosync * 1e3,
                "phases": [(n, s * 1e3, d * 1e3) for n, s, d in phases],
            })  # fmt: skip
    finally:
        mdbench.resync = real_resync
        for path in (a, b, bm):
            path.unlink(missing_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--size", default="1G", help="leg size")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunk-size", default="64K", help="bitmap chunk size")
    parser.add_argument("--cli-only", action="store_true", help="skip the in-process half")
    parser.add_argument("--write-path", action="store_true", help="mirror vs file write path")
    parser.add_argument("--phases", action="store_true", help="resync() timed phase by phase")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    size = parse_size(args.size, "size")
    chunk = parse_size(args.chunk_size, "chunk size")
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        if args.phases:
            out["phases"] = bench_phases(Path(scratch), size, chunk, args.repeat)
            for run in out["phases"]:
                steps = ", ".join(f"{n} {st:.2f}+{d:.2f}" for n, st, d in run["phases"])
                print(f"resync {run['resync_ms']:.2f} ms; peer {run['peer_ms']:.2f} ms "
                      f"(copies {run['peer_copies_ms']:.2f}, fdatasync "
                      f"{run['peer_ms'] - run['peer_copies_ms']:.2f}); phases (start+took): "
                      + steps)  # fmt: skip
        elif args.write_path:
            wp = bench_write_path_cpu(Path(scratch), args.repeat)
            out["write_path"] = wp
            f, m = wp["median"]["file"], wp["median"]["mirror"]
            for what in ("seq", "rand"):
                print(
                    f"{what}-out per call: file {f[what + '_wall_us']:.1f} us wall "
                    f"{f[what + '_cpu_us']:.1f} us CPU; mirror {m[what + '_wall_us']:.1f} us "
                    f"wall {m[what + '_cpu_us']:.1f} us CPU; mirror/file throughput "
                    f"{f[what + '_wall_us'] / m[what + '_wall_us']:.2f}x wall, "
                    f"{f[what + '_cpu_us'] / m[what + '_cpu_us']:.2f}x CPU"
                )
        elif not args.cli_only:
            results = bench_resync(scratch, size=size, chunk_size=chunk, repeat=args.repeat)
            by = {r["target"]: r for r in results}
            resync, cfr = by["mirror-resync"], by["copy_file_range"]
            out["in_process"] = results
            print(f"resync() median {resync['seconds'] * 1e3:.1f} ms, runs "
                  + ", ".join(f"{s * 1e3:.1f}" for s in resync["runs"]))  # fmt: skip
            print(f"copy_file_range+fdatasync median {cfr['seconds'] * 1e3:.1f} ms, runs "
                  + ", ".join(f"{s * 1e3:.1f}" for s in cfr["runs"]))  # fmt: skip
            print(f"resync / copy_file_range: {resync['seconds'] / cfr['seconds']:.2f}x; run by "
                  "run: " + ", ".join(f"{r / c:.2f}x" for r, c in
                                      zip(resync["runs"], cfr["runs"], strict=True)))  # fmt: skip
        if not (args.write_path or args.phases):
            cli = bench_cli(Path(scratch), size, chunk, args.repeat)
            out["cli"] = cli
            print(f"swapio bitmap resync (CLI) median {cli['resync_cli'] * 1e3:.0f} ms, runs "
                  + ", ".join(f"{s * 1e3:.0f}" for s in cli["resync_runs"]))  # fmt: skip
            print(f"cp + sync median {cli['cp_sync'] * 1e3:.0f} ms, runs "
                  + ", ".join(f"{s * 1e3:.0f}" for s in cli["cp_sync_runs"]))  # fmt: skip
            print(f"cp + sync / CLI resync: {cli['speedup']:.1f}x ({cli['command']})")
            for name, secs in cli["start_floors"].items():
                print(f"  start floor {name.replace('_', ' ')}: {secs * 1e3:.0f} ms "
                      f"(cp + sync / it: {cli['cp_sync'] / secs:.1f}x)")  # fmt: skip
    out["load_after"] = os.getloadavg()
    print("load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
        *out["load_before"], *out["load_after"]))  # fmt: skip
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
