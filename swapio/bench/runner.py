"""Run the benchmark plan: set up every target, run the selected workloads, tear down.

A target that cannot be set up, or a workload that fails, becomes a :class:`Skipped` entry
with the reason: one broken backend never hides the others' figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from swapio.area import CreateRequest, SwapArea
from swapio.bench import nfs_peers, paging, peers
from swapio.bench.results import Kind, Result, Skipped
from swapio.bench.targets import (
    AiofilesTarget,
    AiohttpFloorTarget,
    AreaTarget,
    RawFileTarget,
    Target,
)
from swapio.bench.workloads import DEVICE_WORKLOADS, BenchConfig, Workload
from swapio.errors import SwapioError, UsageError
from swapio.plugins import PluginHost
from swapio.pool import PagePool

#: Every workload name, in run order.
WORKLOADS: tuple[str, ...] = (*DEVICE_WORKLOADS, *paging.PAGING_WORKLOADS)
#: Peers run the device workloads only.
PEER_WORKLOADS: frozenset[str] = frozenset(DEVICE_WORKLOADS)

Progress = Callable[[int, int, str], None]


@dataclass
class Plan:
    """What to run: backend names, workload names, whether peers run, extra URLs."""

    backends: list[str]
    workloads: list[str]
    peers: list[str]
    urls: dict[str, str] = field(default_factory=dict)
    nfs_url: str | None = None
    directory: str | None = None


#: Backends whose bench areas go in the temp directory by the rules in BenchRun.url_for.
BUILTIN_PLACES = ("memory", "file", "flashlog", "mirror", "nfs")


def bench_placer(host: PluginHost, backend: str) -> Any:
    """The plugin's optional ``bench_location(host, uid, qd)`` async context manager."""
    for b in host.backends():
        if b.info.name == backend:
            return getattr(b.plugin, "bench_location", None)
    return None


def _mirror_url(tmp: Path, tag: str) -> str:
    def q(path: Path) -> str:
        return quote(str(path), safe="/")

    return (
        f"mirror://bench{tag}?bitmap={q(tmp / f'mirror{tag}.bitmap')}"
        f"&leg0={q(tmp / f'leg0{tag}.swap')}&leg1={q(tmp / f'leg1{tag}.swap')}"
    )


def _nfs_area_url(base: str, name: str) -> str:
    head, sep, query = base.partition("?")
    return f"{head.rstrip('/')}/{name}.swap{sep}{query}"


def _with_suffix(url: str, suffix: str) -> str:
    """``.../NAME?q`` -> ``.../NAME<suffix>?q`` (a sibling area of a plugin-placed URL)."""
    head, sep, query = url.partition("?")
    return f"{head}{suffix}{sep}{query}"


class BenchRun:
    """One benchmark run: the host, the temp directory, the in-process page server."""

    def __init__(self, host: PluginHost, plan: Plan, cfg: BenchConfig, tmp: Path) -> None:
        self.host = host
        self.plan = plan
        self.cfg = cfg
        self.tmp = tmp
        self.uid = uuid.uuid4().hex[:12]
        self.stack = AsyncExitStack()
        self._placed: dict[str, str] = {}

    async def url_for(self, backend: str, tag: str = "") -> str | None:
        """A fresh area URL for ``backend`` under the temp directory, or None if unknown.

        ``tag`` names a second, independent area of the same backend (the pressure
        workload's); URLs given with ``--url`` have no second area.
        """
        if backend in self.plan.urls:
            return None if tag else self.plan.urls[backend]
        # A plugin may place its own bench areas (the http plugin starts a page server).
        placer = bench_placer(self.host, backend)
        if placer is not None:
            if backend not in self._placed:
                self._placed[backend] = await self.stack.enter_async_context(
                    placer(self.host, self.uid, self.cfg.qd)
                )
            return _with_suffix(self._placed[backend], tag)
        tmp, name = self.tmp, f"bench-{self.uid}{tag}"
        if backend == "memory":
            return f"memory://{name}"
        if backend == "file":
            return f"file://{tmp}/file{tag}.swap"
        if backend == "flashlog":
            return f"flashlog://{tmp}/flash{tag}.img?name=/swapfile"
        if backend == "mirror":
            return _mirror_url(tmp, tag)
        if backend == "nfs":
            return _nfs_area_url(self.plan.nfs_url, name) if self.plan.nfs_url else None
        return None

    @asynccontextmanager
    async def backend(self, name: str) -> AsyncIterator[AreaTarget]:
        url = await self.url_for(name)
        if url is None:
            raise UsageError(f"no benchmark location known for backend {name!r}")
        create = CreateRequest(self.cfg.pages, self.cfg.page_size)
        area = await self.host.activate(url, create=create)
        fresh_url = await self.url_for(name, "-pressure")

        async def open_fresh(pool: PagePool) -> SwapArea:
            assert fresh_url is not None
            return await self.host.activate(fresh_url, create=create, pool=pool)

        target = AreaTarget(
            name,
            Kind.BACKEND,
            area.page_size,
            area.pages,
            open_fresh=open_fresh if fresh_url else None,
            swap_area=area,
        )
        try:
            yield target
        finally:
            await target.close()

    @asynccontextmanager
    async def peer(self, name: str) -> AsyncIterator[Target]:
        cfg = self.cfg
        target: Target
        if name == "raw-pwritev":
            target = RawFileTarget.create(self.tmp / "raw.swap", cfg.pages, cfg.page_size)
        elif name == "aiofiles-naive":
            target = await AiofilesTarget.create(
                self.tmp / "aiofiles.swap", cfg.pages, cfg.page_size, cfg.qd
            )
        elif name == "aiohttp-floor":
            target = await AiohttpFloorTarget.create(cfg.pages, cfg.page_size, max(16, cfg.qd))
        else:
            raise UsageError(f"unknown peer {name!r}")
        try:
            yield target
        finally:
            await target.close()


def _workload(name: str) -> Workload:
    if name in DEVICE_WORKLOADS:
        return DEVICE_WORKLOADS[name]
    return paging.PAGING_WORKLOADS[name]


async def run_plan(
    host: PluginHost, plan: Plan, cfg: BenchConfig, progress: Progress | None = None
) -> tuple[list[Result], list[Skipped], dict[str, Any]]:
    """Run ``plan``; return the results, the skipped pairs and the run's metadata."""
    results: list[Result] = []
    skipped: list[Skipped] = []
    peer_workloads = [w for w in plan.workloads if w in PEER_WORKLOADS]
    internal = [p for p in plan.peers if p in peers.INTERNAL_PEERS]
    external = [p for p in plan.peers if p not in peers.INTERNAL_PEERS]
    total = len(plan.backends) * len(plan.workloads) + len(internal) * len(peer_workloads)
    total += len(external) + ("pressure" in plan.workloads and bool(plan.backends))
    step = 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total, label)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="swapio-bench-", dir=plan.directory) as tmp:
        run = BenchRun(host, plan, cfg, Path(tmp))
        async with run.stack:
            for name in plan.backends:
                await _run_target(run, name, Kind.BACKEND, plan.workloads, results, skipped, tick)
            if "pressure" in plan.workloads and plan.backends:
                tick("reply-model pressure (with and without the reserve)")
                results.append(await paging.pressure_model(cfg))
            for name in internal:
                await _run_target(run, name, Kind.PEER, peer_workloads, results, skipped, tick)
            for name in external:
                tick(f"{name} (measured by its plugin)")
                results.extend(
                    await peers.run_external(
                        host, [name], plan.nfs_url, cfg, Path(tmp), skipped, run.uid
                    )
                )
        warnings = await _cleanup_nfs(plan, run.uid)
    meta = {
        "machine": machine_info(),
        "warnings": warnings,
        "config": {
            "pages": cfg.pages,
            "page_size": cfg.page_size,
            "batch": cfg.batch,
            "qd": cfg.qd,
            "ops": cfg.ops,
            "seconds_cap": cfg.seconds,
            "repeat": cfg.repeat,
        },
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    return results, skipped, meta


async def _run_target(
    run: BenchRun,
    name: str,
    kind: Kind,
    workloads: list[str],
    results: list[Result],
    skipped: list[Skipped],
    tick: Callable[[str], None],
) -> None:
    opener = run.backend(name) if kind is Kind.BACKEND else run.peer(name)
    try:
        async with opener as target:
            for workload in workloads:
                tick(f"{name} {workload}")
                try:
                    results.append(await _measure(_workload(workload), target, run.cfg))
                except paging.Unavailable as exc:
                    skipped.append(Skipped(name, workload, str(exc)))
                except SwapioError as exc:
                    skipped.append(Skipped(name, workload, f"failed: {exc}"))
    except SwapioError as exc:
        reason = f"setup failed: {exc}"
        done = {(s.target, s.workload) for s in skipped} | {(r.target, r.workload) for r in results}
        for workload in workloads:
            if (name, workload) not in done:
                tick(f"{name} {workload}")
                skipped.append(Skipped(name, workload, reason))


async def _measure(workload: Workload, target: Target, cfg: BenchConfig) -> Result:
    """Run ``workload`` ``cfg.repeat`` times; keep the run with the median throughput.

    The kept result carries every run's pages/s in ``runs_pages_per_s`` when repeated.
    """
    runs = [await workload(target, cfg) for _ in range(cfg.repeat)]
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r.pages_per_s)
    median = ordered[len(ordered) // 2]
    rates = [round(r.pages_per_s, 1) for r in runs]
    return dataclasses.replace(median, extra={**median.extra, "runs_pages_per_s": rates})


async def _cleanup_nfs(plan: Plan, uid: str) -> list[str]:
    """Remove this run's files from the NFS export; report (not raise) a failure."""
    if not plan.nfs_url or not ("nfs" in plan.backends or set(plan.peers) & set(peers.NFS_PEERS)):
        return []
    try:
        export = nfs_peers.NfsExport.parse(plan.nfs_url)
        await asyncio.to_thread(nfs_peers.cleanup, export, uid)
    except Exception as exc:  # cleanup is best effort; the figures stand
        return [
            f"could not remove this run's files (bench-{uid}*) from {plan.nfs_url}: "
            f"{type(exc).__name__}: {exc} (the removal uses pyNfsClient)"
        ]
    return []


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
