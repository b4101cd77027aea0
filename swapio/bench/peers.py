"""Peer tools measured beside the backends.

In-process peers (:mod:`swapio.bench.targets`) run the device workloads themselves.  The NFS
peers (``nfs-cp`` from libnfs-utils, ``pyNfsClient``) and the resync peer (``cp`` of a whole
leg) are measured by functions their backends' engineers keep next to their own benchmarks:
``benchmarks/bench_nfs.py`` and ``benchmarks/bench_resync.py`` in a source checkout, each
exposing ``bench_peers(...) -> list[dict]``; the results are folded into ours.  When such a
function (or an NFS server) is not available, the peer is reported as skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

from swapio.bench.results import Kind, Latency, Result, Skipped
from swapio.bench.workloads import BenchConfig

INTERNAL_PEERS: tuple[str, ...] = ("raw-pwritev", "aiofiles-naive")
NFS_PEERS: tuple[str, ...] = ("nfs-cp", "pynfsclient")
RESYNC_PEERS: tuple[str, ...] = ("cp",)
ALL_PEERS: tuple[str, ...] = (*INTERNAL_PEERS, *NFS_PEERS, *RESYNC_PEERS)

_REPO_BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(module: str) -> ModuleType | None:
    """Load ``benchmarks/<module>.py`` of a source checkout, if present."""
    path = _REPO_BENCHMARKS / f"{module}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"swapio_benchmarks_{module}", path)
    if spec is None or spec.loader is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _to_result(doc: dict[str, Any]) -> Result:
    lat = doc.get("lat_ns") or {}
    known = {
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
    result = Result(
        target=str(doc["target"]),
        kind=Kind(doc.get("kind", "peer")),
        workload=str(doc["workload"]),
        page_size=int(doc["page_size"]),
        pages=int(doc["pages"]),
        seconds=float(doc["seconds"]),
        extra={k: v for k, v in doc.items() if k not in known},
    )
    if lat:
        latency = Latency(int(lat.get("p50", 0)), int(lat.get("p99", 0)), int(lat.get("max", 0)))
        result.extra["lat_ns_reported"] = latency.to_json()
    return result


async def _call(func: Any, **kwargs: Any) -> list[dict[str, Any]]:
    accepted = inspect.signature(func).parameters
    args = {k: v for k, v in kwargs.items() if k in accepted}
    out = func(**args)
    if inspect.isawaitable(out):
        out = await out
    return list(out)


async def run_external(
    selected: list[str], nfs_url: str | None, cfg: BenchConfig, skipped: list[Skipped]
) -> list[Result]:
    """Run the selected external peers; append a :class:`Skipped` for each one that cannot."""
    results: list[Result] = []
    groups = (
        ("bench_nfs", [p for p in selected if p in NFS_PEERS], True),
        ("bench_resync", [p for p in selected if p in RESYNC_PEERS], False),
    )
    for module, names, needs_nfs in groups:
        if not names:
            continue
        reason = None
        mod = None
        if needs_nfs and nfs_url is None:
            reason = "no NFS server: pass --nfs URL"
        else:
            try:
                mod = _load(module)
            except Exception as exc:  # the peer's module is not ours; report, don't crash
                reason = f"benchmarks/{module}.py failed to load: {exc}"
            if mod is None and reason is None:
                reason = f"benchmarks/{module}.py not found (source checkout only)"
            elif mod is not None and not hasattr(mod, "bench_peers"):
                reason = f"benchmarks/{module}.py has no bench_peers()"
        if reason is not None or mod is None:
            skipped.extend(Skipped(n, "*", reason or "unavailable") for n in names)
            continue
        try:
            docs = await _call(
                mod.bench_peers,
                peers=names,
                url=nfs_url,
                nfs_url=nfs_url,
                pages=cfg.pages,
                page_size=cfg.page_size,
                batch=cfg.batch,
                qd=cfg.qd,
                ops=cfg.ops,
                seconds=cfg.seconds,
            )
            results.extend(_to_result(doc) for doc in docs)
        except Exception as exc:  # a failing peer is reported, never fatal to the run
            skipped.extend(Skipped(n, "*", f"failed: {type(exc).__name__}: {exc}") for n in names)
    return results
