"""``swapio bench``: every installed backend and the peer tools, on the same workloads.

With no arguments it runs every workload against every installed backend it can place in a
temporary directory (memory, file, flashlog, mirror; http against an in-process page server;
NFS when ``--nfs URL`` or ``$SWAPIO_BENCH_NFS`` names a server, or when rpcbind on loopback
knows one with an export) and against the in-process peers, each workload capped at
``--seconds``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Sequence

import click

from swapio.area import check_page_size
from swapio.bench import nfs_peers, render
from swapio.bench import plot as plotting
from swapio.bench.peers import ALL_PEERS, INTERNAL_PEERS, NFS_PEERS, RESYNC_PEERS
from swapio.bench.results import Result, Skipped, document
from swapio.bench.runner import BUILTIN_PLACES, WORKLOADS, Plan, bench_placer, run_plan
from swapio.bench.workloads import BenchConfig
from swapio.errors import BackendIOError, UsageError
from swapio.output import emit_json
from swapio.plugins import PluginHost

ENV_NFS = "SWAPIO_BENCH_NFS"


def _names(values: Iterable[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _select(given: list[str], valid: Iterable[str], what: str) -> list[str]:
    valid = list(valid)
    unknown = [n for n in given if n not in valid]
    if unknown:
        raise UsageError(
            f"unknown {what} {', '.join(repr(n) for n in unknown)}; "
            f"valid {what}s: {', '.join(valid) or 'none installed'}"
        )
    return list(dict.fromkeys(given))


def _parse_urls(values: Iterable[str]) -> dict[str, str]:
    urls = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url:
            raise UsageError(f"--url expects BACKEND=URL, got {value!r}")
        urls[name.strip()] = url.strip()
    return urls


def build_plan(
    host: PluginHost,
    backends: list[str],
    workloads: list[str],
    peers: list[str],
    no_peers: bool,
    urls: dict[str, str],
    nfs_url: str | None,
    directory: str | None,
) -> tuple[Plan, list[Skipped]]:
    """Check the selection against what is installed; return the plan and what is skipped."""
    installed = [b.info.name for b in host.backends()]
    placeable = {n for n in installed if n in BUILTIN_PLACES or bench_placer(host, n)}
    for name in urls:
        _select([name], installed, "backend")
    chosen_workloads = _select(workloads, WORKLOADS, "workload") or list(WORKLOADS)
    skipped: list[Skipped] = []
    if backends:
        chosen = _select(backends, installed, "backend")
    else:
        chosen = []
        for name in installed:
            if name in urls or (name in placeable and (name != "nfs" or nfs_url)):
                chosen.append(name)
            else:
                reason = (
                    "no NFS server (none with a writable export known to rpcbind on "
                    "127.0.0.1): pass --nfs URL or set $" + ENV_NFS
                    if name == "nfs"
                    else "no benchmark location known: pass --url NAME=URL"
                )
                skipped.append(Skipped(name, "*", reason))
    for name in chosen:
        if name == "nfs" and not nfs_url and name not in urls:
            raise UsageError(f"backend 'nfs' needs a server: pass --nfs URL or set ${ENV_NFS}")
        if name not in placeable and name not in urls:
            raise UsageError(f"backend {name!r} needs a location: pass --url {name}=URL")
    if no_peers:
        chosen_peers: list[str] = []
    elif peers:
        chosen_peers = _select(peers, ALL_PEERS, "peer")
    else:
        chosen_peers = list(INTERNAL_PEERS)
        if "nfs" in chosen and nfs_url:
            chosen_peers += NFS_PEERS
        if "mirror" in chosen:
            chosen_peers += RESYNC_PEERS
    plan = Plan(
        backends=chosen,
        workloads=chosen_workloads,
        peers=chosen_peers,
        urls=urls,
        nfs_url=nfs_url,
        directory=directory,
    )
    return plan, skipped


@click.command("bench")
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    help="Backend(s) to measure (repeat or comma-separate); default: all installed.",
)
@click.option(
    "-w",
    "--workload",
    "workloads",
    multiple=True,
    help=f"Workload(s): {', '.join(WORKLOADS)}; default: all.",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    help=f"Peer(s): {', '.join(ALL_PEERS)}; default: the in-process ones "
    "(plus the NFS ones with --nfs).",
)
@click.option("--no-peers", is_flag=True, help="Measure backends only.")
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="BACKEND=URL",
    help="Where to create the area for BACKEND (for backends the bench cannot place).",
)
@click.option(
    "--nfs",
    "nfs_url",
    metavar="URL",
    help=f"NFS export root URL (or ${ENV_NFS}); 'off' disables the rpcbind probe.",
)
@click.option(
    "--pages",
    default=8192,
    show_default=True,
    type=click.IntRange(64),
    help="Area size and sequential pages per workload.",
)
@click.option("--page-size", default=4096, show_default=True, type=int)
@click.option(
    "--batch",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Pages per call in seq-out/seq-in.",
)
@click.option(
    "--qd",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Calls in flight in rand-out/rand-in.",
)
@click.option(
    "--ops",
    default=4096,
    show_default=True,
    type=click.IntRange(1),
    help="Single-page calls in rand-out/rand-in.",
)
@click.option(
    "--seconds",
    default=1.5,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Time cap per (target, workload).",
)
@click.option(
    "--no-reserve-demo",
    is_flag=True,
    help="pressure: skip the model run without the reserve (its teardown takes ~30 s).",
)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(1, 9),
    help="Runs of each (target, workload); the median run is reported.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True),
    help="Where temporary areas go (default: the system temp dir).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write throughput bars and latency CDFs to this PNG (needs matplotlib).",
)
@click.pass_context
def bench(
    ctx: click.Context,
    backends: tuple[str, ...],
    workloads: tuple[str, ...],
    peers: tuple[str, ...],
    no_peers: bool,
    urls: tuple[str, ...],
    nfs_url: str | None,
    pages: int,
    page_size: int,
    batch: int,
    qd: int,
    ops: int,
    seconds: float,
    no_reserve_demo: bool,
    repeat: int,
    directory: str | None,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Measure every installed backend and the peer tools on the same workloads."""
    host = ctx.obj if isinstance(ctx.obj, PluginHost) else PluginHost()
    nfs = nfs_url or os.environ.get(ENV_NFS) or None
    found = None
    if nfs == "off":
        nfs = None
    elif nfs is None and not backends:
        # The default run covers NFS when a server is reachable (rpcbind on loopback).
        installed = {b.info.name for b in host.backends()}
        if "nfs" in installed:
            nfs = found = nfs_peers.discover()
    check_page_size(page_size)
    if plot_path:
        plotting.check_available()
        plotting.check_target(plot_path)
    plan, skipped = build_plan(
        host,
        _names(backends),
        _names(workloads),
        _names(peers),
        no_peers,
        _parse_urls(urls),
        nfs,
        directory,
    )
    cfg = BenchConfig(
        pages=pages,
        page_size=page_size,
        batch=batch,
        qd=qd,
        ops=ops,
        seconds=seconds,
        repeat=repeat,
        reserve_demo=not no_reserve_demo,
    )
    progress = render.ProgressBar(sys.stderr) if sys.stderr.isatty() and not as_json else None
    try:
        results, more_skipped, meta = asyncio.run(run_plan(host, plan, cfg, progress))
    finally:
        if progress is not None:
            progress.close()
    skipped.extend(more_skipped)
    for warning in meta.get("warnings", []):
        click.echo(f"swapio bench: warning: {warning}", err=True)
    if found is not None:
        meta["nfs_url"] = found
        meta["nfs_discovered"] = True
        click.echo(f"swapio bench: nfs: using {found} (found through rpcbind)", err=True)
    if as_json:
        emit_json(document(results, skipped, meta))
        _finish(results, plan.workloads, plot_path)
        return
    machine = meta["machine"]
    click.echo(
        f"swapio bench: {machine['cpu']} x{machine['cpus']} (load {machine['loadavg_1m']}), "
        f"Python {machine['python']}; "
        f"{page_size} B pages, batch {batch}, QD {qd}, cap {seconds:g} s per workload"
        f"{f', median of {repeat} runs' if repeat > 1 else ''}; "
        f"{meta['wall_seconds']:.1f} s total"
    )
    click.echo(render.table(results, plan.workloads))
    ratios = render.ratio_lines(results)
    if ratios:
        click.echo("\n" + ratios)
    if skipped:
        click.echo("\n" + render.skipped_lines(skipped))
    _finish(results, plan.workloads, plot_path)
    if plot_path:
        click.echo(f"\nplot written to {plot_path}")


def _finish(results: list[Result], workloads: Sequence[str], plot_path: str | None) -> None:
    """After the results are out: draw the plot; fail if nothing could be measured."""
    if plot_path:
        plotting.plot(results, workloads, plot_path)
    if not results:
        raise BackendIOError("nothing was measured: every target was skipped (reasons above)")
