"""Peer tools measured beside the backends, by the plugins that know them.

The in-process peers (``raw-pwritev``, ``aiofiles-naive``; :mod:`swapio.bench.targets`) run
the device workloads themselves.  Peers that belong to one backend are measured by that
backend's plugin package, in a module named ``bench`` next to its plugin module:

* ``cp`` (resync): the package serving ``mirror`` provides ``bench_resync(directory, *,
  size, repeat)`` — swapio's bitmap resync against ``cp`` of the whole leg and
  ``copy_file_range`` of the dirty chunks.
* ``nfs-cp``, ``pynfsclient``: the package serving ``nfs`` may provide ``bench_peers(*, url,
  peers, pages, page_size, batch, qd, ops, seconds)``; without it, swapio measures them
  itself (:mod:`swapio.bench.nfs_peers`).

Each returns result dicts in the ``--json`` shape; they are folded into the run.  The core
never imports a plugin by name: the module is found through the plugin host.  A peer whose
plugin or function is missing is reported as skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swapio.bench import nfs_peers
from swapio.bench.results import Kind, Latency, Result, Skipped
from swapio.bench.workloads import BenchConfig
from swapio.errors import UsageError
from swapio.plugins import PluginHost

INTERNAL_PEERS: tuple[str, ...] = ("raw-pwritev", "aiofiles-naive", "aiohttp-floor")
NFS_PEERS: tuple[str, ...] = ("nfs-cp", "pynfsclient")
RESYNC_PEERS: tuple[str, ...] = ("cp",)
ALL_PEERS: tuple[str, ...] = (*INTERNAL_PEERS, *NFS_PEERS, *RESYNC_PEERS)
#: Leg size of the resync comparison in the default run (kept small: two-minute budget).
RESYNC_BYTES = 64 << 20

_KNOWN_KEYS = frozenset(
    {
        "target",
        "kind",
        "workload",
        "page_size",
        "pages",
        "seconds",
        "pages_per_s",
        "bw_bytes",
        "lat_ns",
    }
)


def plugin_bench_function(host: PluginHost, backend: str, name: str) -> Callable[..., Any] | None:
    """``<package of backend's plugin>.bench.<name>``, or None when there is none."""
    for b in host.backends():
        if b.info.name != backend:
            continue
        module_name = getattr(b.plugin, "__name__", "")
        package = module_name.rpartition(".")[0] or module_name
        try:
            module = importlib.import_module(f"{package}.bench")
        except ImportError:
            return None
        func = getattr(module, name, None)
        return func if callable(func) else None
    return None


def to_result(doc: dict[str, Any]) -> Result:
    """A result dict from a plugin's benchmark, as a :class:`Result`."""
    lat = doc.get("lat_ns") or {}
    reported = Latency(int(lat.get("p50", 0)), int(lat.get("p99", 0)), int(lat.get("max", 0)))
    return Result(
        target=str(doc["target"]),
        kind=Kind(doc.get("kind", "peer")),
        workload=str(doc["workload"]),
        page_size=int(doc["page_size"]),
        pages=int(doc["pages"]),
        seconds=float(doc["seconds"]),
        extra={k: v for k, v in doc.items() if k not in _KNOWN_KEYS},
        reported=reported,
    )


def _call_sync(func: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    accepted = inspect.signature(func).parameters
    out = func(**{k: v for k, v in kwargs.items() if k in accepted})
    if inspect.isawaitable(out):
        out = asyncio.run(out)  # type: ignore[arg-type]
    return list(out)


async def run_external(
    host: PluginHost,
    selected: list[str],
    nfs_url: str | None,
    cfg: BenchConfig,
    directory: Path,
    skipped: list[Skipped],
    uid: str = "peers",
) -> list[Result]:
    """Run the selected plugin-measured peers (in a thread: they block and may run a loop)."""
    results: list[Result] = []
    resync = [p for p in selected if p in RESYNC_PEERS]
    if resync:
        func = plugin_bench_function(host, "mirror", "bench_resync")
        if func is None:
            skipped.extend(
                Skipped(p, "resync", "the mirror backend's plugin offers no bench_resync")
                for p in resync
            )
        else:
            results += await _run(
                func,
                resync,
                "resync",
                skipped,
                directory=directory / "resync",
                size=RESYNC_BYTES,
                repeat=1,
            )
    nfs = [p for p in selected if p in NFS_PEERS]
    if nfs:
        if nfs_url is None:
            skipped.extend(Skipped(p, "*", "no NFS server: pass --nfs URL") for p in nfs)
            return results
        func = plugin_bench_function(host, "nfs", "bench_peers")
        if func is not None:
            results += await _run(
                func, nfs, "*", skipped,
                url=nfs_url, peers=nfs, pages=cfg.pages, page_size=cfg.page_size,
                batch=cfg.batch, qd=cfg.qd, ops=cfg.ops, seconds=cfg.seconds,
            )  # fmt: skip
        else:
            results += await _run_builtin_nfs(nfs, nfs_url, cfg, uid, skipped)
    return results


async def _run_builtin_nfs(
    names: list[str], nfs_url: str, cfg: BenchConfig, uid: str, skipped: list[Skipped]
) -> list[Result]:
    """swapio's own nfs-cp / pyNfsClient measurements (when the nfs plugin offers none)."""
    results: list[Result] = []
    try:
        export = nfs_peers.NfsExport.parse(nfs_url)
    except UsageError as exc:
        skipped.extend(Skipped(n, "*", str(exc)) for n in names)
        return results
    runners = {"nfs-cp": nfs_peers.run_nfs_cp, "pynfsclient": nfs_peers.run_pynfsclient}
    for name in names:
        try:
            results += await asyncio.to_thread(runners[name], export, cfg, uid)
        except Exception as exc:  # a peer's failure is reported, never fatal to the run
            skipped.append(Skipped(name, "*", f"failed: {type(exc).__name__}: {exc}"))
    return results


async def _run(
    func: Callable[..., Any], names: list[str], workload: str, skipped: list[Skipped],
    **kwargs: Any,
) -> list[Result]:  # fmt: skip
    try:
        docs = await asyncio.to_thread(_call_sync, func, **kwargs)
        return [to_result(doc) for doc in docs]
    except Exception as exc:  # a peer's failure is reported, never fatal to the run
        skipped.extend(Skipped(n, workload, f"failed: {type(exc).__name__}: {exc}") for n in names)
        return []
