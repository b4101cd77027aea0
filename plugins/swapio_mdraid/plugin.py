"""swapio entry point of the md plugin: the ``mirror`` URL scheme and ``swapio bitmap``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

import swapio
from swapio.area import Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.plugins import PluginHost
from swapio_mdraid import _about

if TYPE_CHECKING:
    from swapio_mdraid._mirror import Mirror

VERSION = _about.VERSION


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("mirror",),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
def swapio_add_commands(cli: click.Group) -> None:
    from swapio_mdraid.cli import bitmap  # noqa: PLC0415 - click tree built on demand

    cli.add_command(bitmap)


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        mirror: Mirror = area.private
        await mirror.stop()
        return None
    # imported when a mirror is activated, not when `swapio bitmap` loads this plugin
    from swapio_mdraid._config import MirrorConfig  # noqa: PLC0415
    from swapio_mdraid._mirror import Mirror as Assembler  # noqa: PLC0415

    config = MirrorConfig.from_location(area.location)
    host = area.host if area.host is not None else PluginHost()
    mirror = await Assembler.assemble(host, config, area.create, pool=area.pool)
    caps = [leg.area.capabilities for leg in mirror.legs]
    return SwapInfo(
        pages=mirror.pages,
        page_size=mirror.page_size,
        capabilities=Capabilities(
            durable=all(c.durable for c in caps),
            discard=True,
            max_pages_per_request=min(c.max_pages_per_request for c in caps),
            queue_depth=min(c.queue_depth for c in caps),
            reserve_pages_per_request=mirror.reserve_pages_per_request(),
            memalloc_requests=mirror.memalloc_requests(),
        ),
        private=mirror,
    )


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    mirror: Mirror = area.private
    await mirror.write(slot, len(pages), pages)  # Mirror.swap_out, one coroutine frame fewer


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    mirror: Mirror = area.private
    await mirror.swap_in(slot, pages)


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    mirror: Mirror = area.private
    await mirror.discard(slot, count)


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_mdraid.bench)."""
    from swapio_mdraid.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
