"""Run the benchmark plan: place every target, run the workloads and peers, tear down.

For each selected target the runner opens its placement (which may start a server), creates
a fresh area there, runs the core workloads on it (each ``repeat`` times), then the target's
peers on the same workloads while the placement is still open, then the target's own
workloads.  A target whose software is absent is *skipped* with the install hint; a target
or workload that fails is a *failure* (listed, and the run exits non-zero), never hiding the
other figures.  Everything is created under one temporary directory (in ``--dir``) that is
removed at the end; an area at a ``--url`` the user gave is removed through the target's
``remove`` when it has one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapio.area import CreateRequest, SwapArea
from swapio.bench import paging, repeat
from swapio.bench.hook import BenchPeer, BenchSite, BenchTarget, BenchWorkload, Durability
from swapio.bench.mapping import MAPPING_WORKLOADS, NOT_MAPPED
from swapio.bench.registry import missing
from swapio.bench.results import Kind, Result, Skipped
from swapio.bench.targets import AreaTarget
from swapio.bench.workloads import DEVICE_WORKLOADS, BenchConfig, Workload
from swapio.errors import AreaExistsError, SwapioError
from swapio.plugins import PluginHost
from swapio.pool import PagePool

Progress = Callable[[int, int, str], None]
#: Workloads whose writes count towards the medium's wear (bytes written per byte swapped).
WEAR_WORKLOADS = ("seq-out", "rand-out")
#: Durability of the scheduler's model backend (``reply-model``, in memory).
MODEL_DURABILITY = Durability.VOLATILE


@dataclass
class Plan:
    """What to run, as the command line selected it."""

    targets: list[BenchTarget]
    #: Core workloads, in run order (``pressure`` last).
    workloads: list[str]
    #: Own workloads of the selected targets (``resync-1pct``).
    own: list[str] = field(default_factory=list)
    #: Selected peers per target name.
    peers: dict[str, list[BenchPeer]] = field(default_factory=dict)
    #: Area URLs the user gave (``--url``), per target name.
    urls: dict[str, str] = field(default_factory=dict)
    #: Values of the targets' declared options.
    options: dict[str, str | None] = field(default_factory=dict)
    #: Targets without a plugin declaration (``--url`` only): durability from the area.
    derived: set[str] = field(default_factory=set)
    directory: str | None = None


@dataclass
class Outcome:
    """What a run produced."""

    results: list[Result] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class _Run:
    """One run's shared state: host, plan, config, outcome, progress."""

    def __init__(
        self, host: PluginHost, plan: Plan, cfg: BenchConfig, progress: Progress | None
    ) -> None:
        self.host = host
        self.plan = plan
        self.cfg = cfg
        self.out = Outcome()
        self.uid = uuid.uuid4().hex[:12]
        self.progress = progress
        self.step = 0
        self.total = _steps(plan)

    def tick(self, label: str) -> None:
        self.step += 1
        if self.progress is not None:
            self.progress(self.step, self.total, label)

    def fail(self, target: str, workload: str, exc: BaseException) -> None:
        self.out.failed.append(Skipped(target, workload, _describe(exc)))


def _steps(plan: Plan) -> int:
    steps = 0
    for target in plan.targets:
        steps += len(plan.workloads) + len(plan.peers.get(target.name, ()))
        steps += sum(1 for w in target.workloads if w.name in plan.own)
    return steps + ("pressure" in plan.workloads and bool(plan.targets))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SwapioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


async def run_plan(
    host: PluginHost, plan: Plan, cfg: BenchConfig, progress: Progress | None = None
) -> Outcome:
    """Run ``plan``; return the results, what was skipped or failed, and the metadata."""
    run = _Run(host, plan, cfg, progress)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    spent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="swapio-bench-", dir=plan.directory) as tmp:
        for target in plan.targets:
            directory = Path(tmp) / _slug(target.name)
            directory.mkdir()
            options = {o.name: plan.options.get(o.name) for o in target.options}
            site = BenchSite(directory, run.uid, cfg, options)
            began = time.perf_counter()
            try:
                await _run_target(run, target, site)
            finally:
                run.out.started.extend(site.started_notes)
                spent[target.name] = round(time.perf_counter() - began, 3)
        if "pressure" in plan.workloads and plan.targets:
            run.tick("reply-model pressure (the scheduler's model, with and without the reserve)")
            try:
                model = await paging.pressure_model(cfg)
            except Exception as exc:  # reported; the backends' figures stand
                run.fail("reply-model", "pressure", exc)
            else:
                # Run once (a demonstration, not a race); its record has the usual keys.
                model = dataclasses.replace(model, kind=Kind.MODEL)
                run.out.results.append(_finish([model], MODEL_DURABILITY))
                if "without_reserve_error" in model.extra:
                    run.out.warnings.append(
                        "the scheduler model's run without the reserve failed: "
                        + model.extra["without_reserve_error"]
                    )
    run.out.meta = {
        "machine": machine_info(load_before),
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
        "target_seconds": spent,
        "started": list(run.out.started),
    }
    return run.out


async def _run_target(run: _Run, target: BenchTarget, site: BenchSite) -> None:
    plan = run.plan
    peers = plan.peers.get(target.name, [])
    own = [w for w in target.workloads if w.name in plan.own]
    given = plan.urls.get(target.name)
    # An area URL or an option pointing elsewhere (--nfs URL) means nothing is started here.
    elsewhere = given is not None or any(site.options.values())
    reason = None if elsewhere else missing(target.needs, hint=target.install_hint)
    only_mapping = bool(plan.workloads) and all(w in MAPPING_WORKLOADS for w in plan.workloads)
    if reason is None and only_mapping and target.mapped is None and not peers and not given:
        reason = NOT_MAPPED  # nothing this target could run: start nothing for it
    if reason is not None:
        for name in [*plan.workloads, *(w.name for w in own)]:
            run.tick(f"{target.name} {name}")
            run.out.skipped.append(Skipped(target.name, name, reason))
        for peer in peers:
            run.tick(peer.name)
            run.out.skipped.append(Skipped(peer.name, "*", f"its backend is skipped: {reason}"))
        return
    if plan.workloads or peers:
        placement: AbstractAsyncContextManager[str] = _given(given) if given else target.place(site)
        done: set[str] = set()
        try:
            async with placement as url:
                await _run_backend(run, target, url, given is not None, done)
                for peer in peers:
                    await _run_peer(run, site, target, peer, url)
        except Exception as exc:  # a plugin's setup or teardown failure is reported, not fatal
            for name in plan.workloads:
                if name not in done:
                    run.fail(target.name, name, exc)
            if not plan.workloads:
                run.fail(target.name, "*", exc)
        if given and target.remove is not None:
            try:
                await target.remove(given)
            except Exception as exc:  # reported; the figures stand
                run.out.warnings.append(f"could not remove the area at {given}: {_describe(exc)}")
    for workload in own:
        await _run_own(run, site, target, workload)


@asynccontextmanager
async def _given(url: str) -> AsyncIterator[str]:
    yield url


async def _activate(run: _Run, target: BenchTarget, url: str, reuse: bool) -> SwapArea:
    create = CreateRequest(run.cfg.pages, run.cfg.page_size)
    try:
        return await run.host.activate(url, create=create)
    except AreaExistsError:
        if not reuse:
            raise
    run.out.warnings.append(
        f"{target.name}: the area at {url} already exists; measured it as it is"
        + ("" if target.remove else " (its plugin cannot remove it: it is left in place)")
    )
    return await run.host.activate(url)


def _wear_counter(target: BenchTarget) -> Callable[[SwapArea | None], int | None]:
    """Bytes written to the medium so far: the plugin's count, else the process's writes."""
    medium = target.medium_bytes

    def count(area: SwapArea | None) -> int | None:
        if medium is not None:
            return medium(area) if area is not None else None
        return written_bytes()

    return count


def written_bytes() -> int | None:
    """Bytes this process passed to write(2)/pwrite(2) so far (``wchar``, /proc/self/io)."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def _run_backend(
    run: _Run, target: BenchTarget, url: str, reuse: bool, done: set[str]
) -> None:
    if not run.plan.workloads:
        return
    cfg = run.cfg
    area = await _activate(run, target, url, reuse)

    async def reopen(pool: PagePool) -> SwapArea:
        return await run.host.activate(url, pool=pool)

    subject = AreaTarget(
        target.name,
        Kind.BACKEND,
        area.page_size,
        area.pages,
        reopen=reopen,
        reserve_need=area.capabilities.reserve_need,
        mapped=None if target.mapped is None else functools.partial(target.mapped, url),
        swap_area=area,
    )
    wear = _wear_counter(target)
    durability = target.durability
    if target.name in run.plan.derived:
        durability = Durability.DURABLE if area.capabilities.durable else Durability.VOLATILE
    elif durability is Durability.DURABLE and not area.capabilities.durable:
        # The area's own capabilities win: a claim the area does not make is not reported.
        durability = Durability.PAGE_CACHE
        run.out.warnings.append(
            f"{target.name}: declared durable by its plugin, but its area does not declare "
            "durable; reported as page cache"
        )
    try:
        for name in run.plan.workloads:
            run.tick(f"{target.name} {name}")
            done.add(name)
            if name == "pressure":
                await subject.close()  # pressure activates the area again on its own pool
            try:
                runs = []
                for _ in range(cfg.repeat):
                    before = wear(subject.area)
                    result = await _workload(name)(subject, cfg)
                    after = wear(subject.area)
                    runs.append(_with_wear(result, name, before, after))
                run.out.results.append(_finish(runs, durability))
            except paging.Unavailable as exc:
                run.out.skipped.append(Skipped(target.name, name, str(exc)))
            except Exception as exc:  # one failing workload never hides the others
                run.fail(target.name, name, exc)
    finally:
        await subject.close()


def _with_wear(result: Result, workload: str, before: int | None, after: int | None) -> Result:
    if workload not in WEAR_WORKLOADS or before is None or after is None:
        return result
    swapped = result.pages * result.page_size
    written = after - before
    extra = {
        **result.extra,
        "medium_write_bytes": written,
        "write_amplification": round(written / swapped, 3) if swapped else 0.0,
    }
    return dataclasses.replace(result, extra=extra)


def _finish(runs: Sequence[Result], durability: str, *, by_seconds: bool = False) -> Result:
    return dataclasses.replace(repeat.combine(runs, by_seconds=by_seconds), durability=durability)


def _workload(name: str) -> Workload:
    if name in DEVICE_WORKLOADS:
        return DEVICE_WORKLOADS[name]
    if name in MAPPING_WORKLOADS:
        return MAPPING_WORKLOADS[name]
    return paging.PAGING_WORKLOADS[name]


async def _run_peer(
    run: _Run, site: BenchSite, target: BenchTarget, peer: BenchPeer, url: str
) -> None:
    workloads = [w for w in run.plan.workloads if w in peer.workloads]
    run.tick(f"{peer.name} (beside {target.name})")
    if not workloads:
        return
    reason = missing(peer.needs, peer.needs_modules, peer.install_hint)
    if reason is not None:
        run.out.skipped.extend(Skipped(peer.name, w, reason) for w in workloads)
        return
    cfg = run.cfg
    try:
        if peer.open is not None:
            async with peer.open(site, url) as subject:
                for name in workloads:
                    runs = [await DEVICE_WORKLOADS[name](subject, cfg) for _ in range(cfg.repeat)]
                    run.out.results.append(_finish(_as_peer(runs, peer), peer.durability))
        elif peer.measure is not None:
            grouped: dict[tuple[str, str], list[Result]] = {}
            for _ in range(cfg.repeat):
                for result in await peer.measure(site, url, workloads):
                    if result.workload in workloads:  # never a row nobody asked for
                        grouped.setdefault((result.target, result.workload), []).append(result)
            for runs in grouped.values():
                run.out.results.append(_finish(_as_peer(runs, peer), peer.durability))
    except Exception as exc:  # a peer's failure is reported, never fatal to the run
        run.fail(peer.name, ",".join(workloads), exc)


def _as_peer(runs: Sequence[Result], peer: BenchPeer) -> list[Result]:
    return [dataclasses.replace(r, kind=Kind.PEER, target=r.target or peer.name) for r in runs]


async def _run_own(
    run: _Run, site: BenchSite, target: BenchTarget, workload: BenchWorkload
) -> None:
    run.tick(f"{target.name} {workload.name}")
    grouped: dict[str, list[Result]] = {}
    try:
        for _ in range(run.cfg.repeat):
            for result in await workload.run(site):
                grouped.setdefault(result.target, []).append(result)
    except Exception as exc:  # reported; the other figures stand
        run.fail(target.name, workload.name, exc)
        return
    for name, runs in grouped.items():
        durability = workload.durability.get(name, target.durability)
        run.out.results.append(_finish(runs, durability, by_seconds=True))


def machine_info(load_before: float | None = None) -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (load at start and end)."""
    cpu = platform.processor() or platform.machine()
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="ascii", errors="replace") as f,
    ):
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    now = os.getloadavg()[0]
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(now if load_before is None else load_before, 2),
        "loadavg_1m_end": round(now, 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
