"""Assembling a mirror: its legs and bitmap activated (or created), checked, then started.

As ``mdadm --assemble`` (or ``--create``): every member is opened, the members must agree in
geometry, the bitmap must cover exactly one member (``sync_size``), and only then does the
array start (``events`` bumped, the daemon, a resync of the chunks that need one).  A
create refuses everything it can *before* creating anything, and a failure part-way
releases what was opened and removes what this call created, so it can be retried.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from swapio.area import CreateRequest
from swapio.errors import SwapioError
from swapio.plugins import PluginHost
from swapio_mdraid._config import MirrorConfig
from swapio_mdraid._format import SECTOR_SIZE, Bitmap
from swapio_mdraid._legs import Leg, open_leg
from swapio_mdraid._store import BitmapStore, precheck, precheck_new, remove_created
from swapio_mdraid.errors import MirrorError

if TYPE_CHECKING:
    from swapio.pool import PagePool
    from swapio_mdraid._mirror import Mirror


async def assemble(
    cls: type[Mirror],
    host: PluginHost,
    config: MirrorConfig,
    create: CreateRequest | None = None,
    pool: PagePool | None = None,
) -> Mirror:
    """Activate (or create) the legs and the bitmap, check they match, start the mirror.

    Every part is activated on ``pool`` (the mirror area's pool; None: the host's).
    """
    legs: list[Leg] = []
    store: BitmapStore | None = None
    created: list[str] = []  # stores this call created, removed again if it fails
    if create is not None:
        # everything that can be refused is refused before anything is created
        precheck(config.bitmap)
        for index, text in enumerate(config.legs):
            precheck_new(text, f"mirror {config.name!r}: leg {index}")
        precheck_new(config.bitmap, f"mirror {config.name!r}: bitmap")
        size = create.pages * create.page_size
        Bitmap.create(sync_size_bytes=size, chunk_size=config.chunk_size, all_dirty=False)
    try:
        for index, text in enumerate(config.legs):
            leg = await open_leg(
                host, index, text, create=create, pool=pool, page_size=config.page_size
            )
            if create is not None:
                created.append(text)
            legs.append(leg)
        check_legs(config, legs)
        size = legs[0].area.pages * legs[0].area.page_size
        if create is not None:
            bitmap = Bitmap.create(
                sync_size_bytes=size, chunk_size=config.chunk_size, all_dirty=False
            )
            store = await BitmapStore.create(host, config.bitmap, bitmap, pool=pool)
            created.append(config.bitmap)
        else:
            store = await BitmapStore.open(host, config.bitmap, pool=pool)
        sync = store.bitmap.superblock.sync_size
        if sync * SECTOR_SIZE != size:
            raise MirrorError(
                f"mirror {config.name!r}: bitmap sync size {sync} sectors "
                f"({sync * SECTOR_SIZE} bytes) does not match the legs ({size} bytes)"
            )
        mirror = cls(config, legs, store)
        await mirror.start()
        return mirror
    except BaseException:
        for leg in legs:
            with contextlib.suppress(SwapioError):
                await leg.deactivate()
        if store is not None:
            with contextlib.suppress(SwapioError):
                await store.close()
        for text in created:
            remove_created(text)
        raise


def check_legs(config: MirrorConfig, legs: list[Leg]) -> None:
    """Every leg has the first one's geometry (pages and page size)."""
    first = legs[0].area
    for leg in legs[1:]:
        if (leg.area.pages, leg.area.page_size) != (first.pages, first.page_size):
            raise MirrorError(
                f"mirror {config.name!r}: legs differ in size: {legs[0].name} has "
                f"{first.pages} pages of {first.page_size} bytes, {leg.name} has "
                f"{leg.area.pages} of {leg.area.page_size}"
            )
