"""The pressure matrix: every backend, under the pool a pager gets by default, keeps making
progress when memory is exhausted — and stalls without the reserve when it needs one.

Each backend is placed exactly as ``swapio bench`` places it (through its plugin's
``swapio_bench`` hook: a ``swapio serve`` in its own process for http, the session's
nfs-ganesha for NFS, image files for flashlog and the mirror).  The area is activated on
``PagePool.for_resident`` (derived watermarks, the area's reserve need on top: nothing tuned),
readahead is on, four tasks fault at once, and every page is verified.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from swapio_nfs.ganesha import GaneshaServer

from swapio import CreateRequest, PluginHost
from swapio.bench.hook import BenchSite, BenchTarget
from swapio.bench.workloads import BenchConfig
from swapio.pager.pressure import PressureResult, pressure_run
from swapio.pool import PagePool

RESIDENT = 32
PAGES = 512
OPS = 240
SEEDS = range(8)
#: Generous for runs that must complete (a loaded CI machine is not a stall); short for the
#: runs that must stall.
COMPLETE_WATCHDOG = 10.0
STALL_WATCHDOG = 1.0
BACKENDS = ("memory", "file", "flashlog", "mirror", "http", "nfs")


def _export_root(server: GaneshaServer) -> str:
    """The session server's export root URL, as ``swapio bench --nfs`` takes it."""
    return (
        f"nfs://{server.host}{server.export}?nfsport={server.nfsport}&mountport={server.mountport}"
    )


def _targets() -> dict[str, BenchTarget]:
    host = PluginHost()
    found: dict[str, BenchTarget] = {}
    for _plugin, contributed in host.collect("swapio_bench"):
        for target in contributed or ():
            found[target.name] = target
    return found


@pytest.fixture(scope="module")
def bench_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="swapio-pressure-") as d:
        yield Path(d)


async def _run(
    host: PluginHost, url: str, *, create: bool, reserve: bool, seed: int, sequential: bool
) -> tuple[PressureResult, int]:
    pool = PagePool.for_resident(RESIDENT, reserve_enabled=reserve)
    area = await host.activate(
        url, pool=pool, create=CreateRequest(pages=PAGES) if create else None
    )
    try:
        result = await pressure_run(
            area,
            resident_pages=RESIDENT,
            ops=OPS,
            writers=4,
            read_share=0.3,
            sequential=sequential,
            seed=seed,
            stall_timeout=COMPLETE_WATCHDOG if reserve else STALL_WATCHDOG,
        )
        return result, area.capabilities.reserve_need
    finally:
        await area.deactivate()


@pytest.mark.parametrize("name", BACKENDS)
async def test_pager_under_pressure_completes_with_the_reserve_and_stalls_without(
    name: str, bench_dir: Path, ganesha_server: GaneshaServer
) -> None:
    target = _targets().get(name)
    assert target is not None, f"no bench target {name!r}: is its plugin installed?"
    options = {"nfs": _export_root(ganesha_server)} if name == "nfs" else {}
    directory = bench_dir / name
    directory.mkdir()
    site = BenchSite(directory, f"pm-{name}", BenchConfig(pages=PAGES), options)
    host = PluginHost()
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(target.place(site))
        first = True
        for sequential in (False, True):
            for seed in SEEDS:
                result, need = await _run(
                    host, url, create=first, reserve=True, seed=seed, sequential=sequential
                )
                first = False
                label = f"{name} seed {seed} {'sequential' if sequential else 'random'}"
                assert result.completed, f"{label}: {result.stall_report}"
                assert result.verified, f"{label}: a page read back wrong"
                assert result.pool_balanced, f"{label}: pool pages leaked"
                assert result.pager.writebacks > 0, f"{label}: no memory pressure reached"
                if need == 0:
                    assert result.reserve_dips == 0, f"{label}: declared no need, dipped"
        result, need = await _run(host, url, create=False, reserve=False, seed=0, sequential=False)
        if need:
            assert result.stalled, (
                f"{name} declares a reserve need of {need} pages yet completed without the "
                "reserve: the need is not real or not exercised"
            )
            assert result.stall_report is not None
            assert "reserve DISABLED" in result.stall_report
        else:
            # a backend that allocates nothing to write a page out needs no reserve
            assert result.completed, result.stall_report
            assert result.verified
