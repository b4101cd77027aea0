"""``swapio bench``: which backend, for what?  Every installed backend against its peers.

With no arguments it runs every target the installed plugins contribute through the
``swapio_bench`` hook (each placed by its plugin, which starts any server it needs on
loopback and stops it afterwards), every workload, every peer, three times each, then
prints the results by workload with durability, seconds and spread, and a closing summary
per need.  Importing this module has no side effects: plugins are asked for their targets
only when the command runs (or shows its help).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from swapio.bench import mapping as bench_mapping
from swapio.bench import plot as plotting
from swapio.bench import registry as reg
from swapio.bench import render, repeat
from swapio.bench.hook import BenchPeer, BenchSite, BenchTarget, Durability
from swapio.bench.results import document
from swapio.bench.runner import Outcome, Plan, run_plan
from swapio.bench.summary import summarise
from swapio.bench.workloads import BenchConfig
from swapio.errors import BackendIOError, UsageError
from swapio.location import Location
from swapio.output import emit_json, say
from swapio.plugins import PluginHost

_REGISTRY_KEY = "swapio.bench.registry"


def _host(ctx: click.Context) -> PluginHost:
    host = ctx.find_object(PluginHost)
    if host is None:
        host = PluginHost()
        ctx.obj = host
    return host


def registry_of(ctx: click.Context) -> reg.Registry:
    """The targets the plugins contribute (asked once per invocation)."""
    found = ctx.meta.get(_REGISTRY_KEY)
    if found is None:
        found = ctx.meta[_REGISTRY_KEY] = reg.collect(_host(ctx))
    assert isinstance(found, reg.Registry)
    return found


class BenchCommand(click.Command):
    """``swapio bench``, plus the options its targets declare (``--nfs URL``)."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        registry = registry_of(ctx)
        for param in params:
            if isinstance(param, click.Option) and param.name == "workloads":
                param.help = (
                    f"Workload(s): {', '.join(registry.workload_names)} (repeat or "
                    "comma-separate); default: all but "
                    f"{', '.join(reg.ON_REQUEST_WORKLOADS)} (on request)."
                )
            elif isinstance(param, click.Option) and param.name == "peers":
                param.help = (
                    f"Peer(s): {', '.join(registry.peers) or 'none installed'} (repeat or "
                    "comma-separate); default: every peer of the selected targets."
                )
        taken = {opt for p in params for opt in p.opts}
        extra = [
            click.Option(
                [f"--{o.name}", o.name.replace("-", "_")],
                metavar=o.metavar,
                help=o.help,
                envvar=o.envvar,
                show_envvar=o.envvar is not None,
            )
            for o in registry.options
            if f"--{o.name}" not in taken
        ]
        return params[:-1] + extra + params[-1:]  # keep --help last


def _names(values: Iterable[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _unknown(given: Iterable[str], valid: Sequence[str], what: str) -> None:
    unknown = [n for n in given if n not in valid]
    if unknown:
        raise UsageError(
            f"unknown {what} {', '.join(repr(n) for n in unknown)}; "
            f"valid {what}s: {', '.join(valid) or 'none installed'}"
        )


def _parse_urls(values: Iterable[str]) -> dict[str, str]:
    urls = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise UsageError(f"--url expects BACKEND=URL, got {value!r}")
        urls[name.strip()] = url.strip()
    return urls


def _check_url_owners(host: PluginHost, registry: reg.Registry, urls: dict[str, str]) -> None:
    """Each ``--url`` must parse and name a scheme of the backend it is given for (else the
    run would measure, then try to remove, another backend's area)."""
    for name, url in urls.items():
        target = registry.targets.get(name)
        backend = target.backend if target is not None else name
        owner = host.owner(Location.parse(url).scheme).info.name
        if owner != backend:
            raise UsageError(f"--url {name}={url}: that is a {owner} URL, not a {backend} one")


def _unplaceable(backend: str) -> BenchTarget:
    """A target for a backend whose plugin has no ``swapio_bench`` hook (``--url`` only)."""

    def place(site: BenchSite) -> Any:
        raise UsageError(f"backend {backend!r} has no bench target: pass --url {backend}=URL")

    return BenchTarget(backend, backend, Durability.VOLATILE, place, summary="(--url only)")


def build_plan(  # noqa: PLR0912 - one check per option, in the order --help lists them
    registry: reg.Registry,
    backends: list[str],
    workloads: list[str],
    peers: list[str],
    no_peers: bool,
    urls: dict[str, str],
) -> tuple[Plan, list[tuple[str, str]]]:
    """Check the selection against what the plugins offer; the plan and what is left out.

    The second value lists ``(backend, reason)`` for installed backends the run leaves out
    because no plugin contributes a bench target for them (they need ``--url``).
    """
    targets = registry.targets
    installed = list(registry.installed_backends)
    valid = list(dict.fromkeys([*targets, *installed]))
    _unknown(backends, valid, "backend")
    _unknown(urls, valid, "backend")
    _unknown(workloads, registry.workload_names, "workload")
    _unknown(peers, list(registry.peers), "peer")

    def expand(name: str) -> list[BenchTarget]:
        if name in targets:
            return [targets[name]]
        return registry.of_backend(name) or [_unplaceable(name)]

    left_out: list[tuple[str, str]] = []
    if backends:
        chosen = [t for name in backends for t in expand(name)]
    else:
        chosen = list(targets.values())
        for name in installed:
            if not registry.of_backend(name) and name not in urls:
                left_out.append(
                    (name, f"its plugin contributes no bench target: pass --url {name}=URL")
                )
    url_of: dict[str, str] = {}
    for name, url in urls.items():
        target = expand(name)[0]
        url_of[target.name] = url
        if target.name not in {t.name for t in chosen} and not backends:
            chosen.append(target)
    for target in chosen:
        if target.name not in targets and target.name not in url_of:
            raise UsageError(
                f"backend {target.name!r} has no bench target: pass --url {target.name}=URL"
            )
    chosen = list({t.name: t for t in chosen}.values())
    names = {t.name for t in chosen}

    own = registry.own_workloads
    if workloads:
        for name in workloads:
            if name in own and own[name][0].name not in names:
                raise UsageError(
                    f"workload {name!r} is {own[name][0].name}'s: add -b {own[name][0].name}"
                )
        wanted = set(workloads)
    else:
        wanted = set(reg.CORE_WORKLOADS) | {w for w, (t, _) in own.items() if t.name in names}
    core = [w for w in (*reg.CORE_WORKLOADS, *reg.ON_REQUEST_WORKLOADS) if w in wanted]
    own_chosen = [w for w in own if w in wanted]

    by_target: dict[str, list[BenchPeer]] = {}
    if not no_peers:
        for name, (target, peer) in registry.peers.items():
            if peers and name not in peers:
                continue
            if target.name not in names:
                if peers:
                    raise UsageError(
                        f"peer {name!r} is compared with {target.name}: add -b {target.name}"
                    )
                continue
            if any(w in peer.workloads for w in core):
                by_target.setdefault(target.name, []).append(peer)
            elif peers:
                raise UsageError(
                    f"peer {name!r} runs {', '.join(peer.workloads)}; none of them is selected"
                )
    plan = Plan(targets=chosen, workloads=core, own=own_chosen, peers=by_target, urls=url_of)
    plan.derived = {t.name for t in chosen if t.name not in targets}
    return plan, left_out


@click.command("bench", cls=BenchCommand)
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    help="Backend(s) or target(s) to measure (repeat or comma-separate); default: all.",
)
@click.option(
    "-w",
    "--workload",
    "workloads",
    multiple=True,
    help=f"Workload(s): {', '.join(reg.CORE_WORKLOADS)} and the targets' own; default: all.",
)
@click.option("--peer", "peers", multiple=True, help="Peer(s) to run; default: every peer.")
@click.option("--no-peers", is_flag=True, help="Measure backends only.")
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="BACKEND=URL",
    help="Create the area of BACKEND at URL instead of placing it (removed afterwards "
    "when its plugin knows how); repeat for several backends.",
)
@click.option(
    "--pages",
    default=8192,
    show_default=True,
    type=click.IntRange(64),
    help="Area size and sequential pages per workload.",
)
@click.option(
    "--page-size", default=4096, show_default=True, type=int, help="Bytes per page of every area."
)
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
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Time cap per (target, workload) run.",
)
@click.option(
    "--no-reserve-demo",
    is_flag=True,
    help="pressure: skip the scheduler model's run without the reserve.",
)
@click.option(
    "--repeat",
    default=3,
    show_default=True,
    type=click.IntRange(1, 9),
    help="Runs of each (target, workload); the median is reported with the spread.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True),
    help="Where areas, images and servers' files go (default: the system temp dir).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write one figure (a panel per workload) to this PNG (needs matplotlib).",
)
@click.pass_context
def bench(
    ctx: click.Context,
    /,
    backends: tuple[str, ...],
    workloads: tuple[str, ...],
    peers: tuple[str, ...],
    no_peers: bool,
    urls: tuple[str, ...],
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
    **target_options: str | None,
) -> None:
    """Which backend, for what? Every installed backend against its peers.

    \b
    Examples:
      swapio bench                                  # everything installed (< 3 minutes)
      swapio bench -b file -b nfs -w seq-out,rand-in --repeat 5
      swapio bench -b file --no-peers --json > bench.json
      swapio bench --url file=file:///mnt/ssd/bench.swap --plot bench.png
    """
    from swapio.area import check_page_size  # noqa: PLC0415 (kept out of import time)

    check_page_size(page_size)
    if plot_path:
        plotting.check_available()
        plotting.check_target(plot_path)
    registry = registry_of(ctx)
    plan, left_out = build_plan(
        registry,
        _names(backends),
        _names(workloads),
        _names(peers),
        no_peers,
        _parse_urls(urls),
    )
    _check_url_owners(_host(ctx), registry, plan.urls)
    plan.options = {o.name: target_options.get(o.name.replace("-", "_")) for o in registry.options}
    plan.directory = str(Path(directory).resolve()) if directory else None
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
        outcome = asyncio.run(run_plan(_host(ctx), plan, cfg, progress))
    finally:
        if progress is not None:
            progress.close()
    from swapio.bench.results import Skipped  # noqa: PLC0415

    outcome.skipped.extend(Skipped(name, "*", why) for name, why in left_out)
    outcome.warnings.extend(_reliability_warnings(outcome))
    summary = summarise(outcome.results)
    for warning in outcome.warnings:
        click.echo(f"swapio bench: warning: {warning}", err=True)
    if as_json:
        doc = document(outcome.results, outcome.skipped, outcome.meta, summary)
        doc["warnings"] = list(outcome.warnings)
        doc["failed"] = [f.to_json() for f in outcome.failed]
        emit_json(doc)
    else:
        _print(outcome, plan, summary)
    if plot_path:
        plotting.plot(outcome.results, [*plan.workloads, *plan.own], plot_path, plan.own)
        if not as_json:
            say(f"\nplot written to {plot_path}")
    if outcome.failed:
        raise BackendIOError(
            f"{len({f.target for f in outcome.failed})} target(s) failed "
            f"({', '.join(dict.fromkeys(f.target for f in outcome.failed))}); reasons above"
        )
    if not outcome.results:
        raise BackendIOError("nothing was measured: every target was skipped (reasons above)")


def _reliability_warnings(outcome: Outcome) -> list[str]:
    machine = outcome.meta["machine"]
    cpus = machine["cpus"] or 1
    load = max(machine["loadavg_1m"], machine["loadavg_1m_end"])
    warnings = []
    if load >= cpus:
        warnings.append(
            f"load average {load:.2f} on {cpus} CPUs: the machine was busy, figures are "
            "unreliable (compare targets within one run, or re-run when it is quiet)"
        )
    unsteady = repeat.unsteady(outcome.results)
    if unsteady:
        rows = ", ".join(
            f"{r.target} {r.workload} ({r.extra['spread_pct']:.0f}%)" for r in unsteady[:8]
        )
        more = f" and {len(unsteady) - 8} more" if len(unsteady) > 8 else ""
        warnings.append(
            f"runs spread over {repeat.SPREAD_WARN_PCT:.0f}% for {rows}{more}: those figures "
            "are unreliable (raise --repeat or --pages)"
        )
    return warnings


def _print(outcome: Outcome, plan: Plan, summary: list[dict[str, Any]]) -> None:
    meta = outcome.meta
    machine, cfg = meta["machine"], meta["config"]
    say(
        f"swapio bench: {machine['cpu']} x{machine['cpus']} "
        f"(load {machine['loadavg_1m']} -> {machine['loadavg_1m_end']}), "
        f"Python {machine['python']}; {cfg['page_size']} B pages, batch {cfg['batch']}, "
        f"QD {cfg['qd']}, cap {cfg['seconds_cap']:g} s per run, median of {cfg['repeat']}; "
        f"{meta['wall_seconds']:.1f} s total"
    )
    if outcome.started:
        say(f"started for this run (and stopped): {'; '.join(outcome.started)}")
    main = render.table(outcome.results, plan.workloads)
    if main:
        say("\n" + main)
    timed = render.timed_table(outcome.results, plan.own)
    if timed:
        say("\nranked by time (less is better):\n" + timed)
    peer_of = {p.name: t for t, ps in plan.peers.items() for p in ps}
    for block in (
        render.peer_lines(outcome.results, peer_of),
        render.pressure_lines(outcome.results),
        bench_mapping.mapping_lines(outcome.results),
    ):
        if block:
            say("\n" + block)
    say("\n" + render.summary_lines(summary))
    if outcome.skipped:
        say("\n" + render.skipped_lines(outcome.skipped))
    if outcome.failed:
        say("\n" + render.skipped_lines(outcome.failed, "FAILED"))
