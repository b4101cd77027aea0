"""The mirror's legs: how each is opened, and how a write-back leg is flushed.

md's RAID1 does not make every data write durable: a write completes when every member has
it, and durability is the upper layer's business (``REQ_PREFLUSH`` / ``REQ_FUA`` pass
through).  The mirror does the same:

* a leg named by a plain path, or by a ``file://`` URL without ``durable=1``, is written
  **write-back** (no ``fdatasync`` per write, like the file backend's default), and gets a
  second, durable activation of the same file — its *flush handle*;
* a leg whose URL says ``durable=1``, or any other backend, is written as its URL says
  (durable legs are durable per write) and has no handle.

The write-intent invariant needs one flush: a bit may be cleared on disk only after the
chunk's data is stable on every leg.  :meth:`Leg.flush` re-writes one page through the
handle (whose ``fdatasync`` covers every earlier write to the file, as the offline resync's
barrier does); the mirror calls it before a sweep that may clear bits, and on a clean stop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from swapio.area import BoundOps, CreateRequest, SwapArea
from swapio.errors import UsageError
from swapio.plugins import PluginHost
from swapio_mdraid import _locate
from swapio_mdraid._direct import InlineWrite, inline_writer

if TYPE_CHECKING:
    from swapio.pool import PagePool

#: Page size of the legs when neither a create request nor the URL says otherwise.
DEFAULT_PAGE_SIZE = _locate.PATH_PAGE_SIZE


@dataclass
class Leg:
    """One member of the mirror."""

    index: int
    name: str
    area: SwapArea
    handle: SwapArea | None = None  # durable activation of a write-back file leg
    faulty: bool = False
    in_sync: bool = True  # False after a re-add, until a resync has copied to it
    inflight: int = 0
    reads: int = 0
    #: The file backend's inline write step of :attr:`area` (``_direct.inline_writer``)
    #: and the hooks (``area.hooks``) it was taken from; None for other backends.
    inline: InlineWrite | None = None
    inline_ops: BoundOps | None = None

    def __post_init__(self) -> None:
        found = inline_writer(self.area)
        if found is not None:
            self.inline_ops, self.inline = found

    async def flush(self) -> None:
        """Every write to this leg completed before the call is durable when it returns.

        The caller must keep writes off slot 0 meanwhile (the page is read through the
        write-back area and written back, unchanged, through the durable handle).
        """
        if self.handle is None:
            return
        area = self.area
        with await area.pool.alloc(area.page_size) as buf:
            await area.swap_in(0, [buf.view])
            await self.handle.swap_out(0, [buf.view])

    async def deactivate(self) -> None:
        """Release the write-back area, then the handle (whose close ``fsync``s)."""
        try:
            await self.area.deactivate()
        finally:
            if self.handle is not None:
                await self.handle.deactivate()


def leg_urls(
    text: str, create: CreateRequest | None, page_size: int | None = None
) -> tuple[str, str | None]:
    """The URL a leg's data goes through, and its flush handle's URL (None: no handle).

    ``page_size``: the mirror's own (its URL's ``page_size``), for legs named by a plain
    path — the rule of :func:`swapio.location.area_page_size`: the create request's when
    creating (the two must agree), else the mirror's, else 4096.
    """
    if not _locate.is_url(text):
        if create is not None:
            if page_size is not None and page_size != create.page_size:
                raise UsageError(
                    f"page size {create.page_size} asked for the new mirror differs from "
                    f"its page_size={page_size}"
                )
            page_size = create.page_size
        page_size = page_size or DEFAULT_PAGE_SIZE
        path = quote(os.path.abspath(text))
        return (
            f"file://{path}?page_size={page_size}",
            f"file://{path}?durable=1&page_size={page_size}",
        )
    location = _locate.location_of(text)
    if location.scheme != "file" or location.query_bool("durable", False):
        return text, None
    query = dict(location.query)
    query["durable"] = "1"
    if create is not None:
        query.setdefault("page_size", str(create.page_size))
    return text, f"file://{quote(location.path)}?{urlencode(query)}"


async def open_leg(
    host: PluginHost,
    index: int,
    text: str,
    *,
    create: CreateRequest | None,
    pool: PagePool | None,
    page_size: int | None = None,
) -> Leg:
    """Activate (or create) leg ``index`` named by ``text``, with its flush handle."""
    data, durable = leg_urls(text, create, page_size)
    area = await host.activate(data, create=create, pool=pool)
    handle: SwapArea | None = None
    if durable is not None:
        try:
            handle = await host.activate(durable, pool=pool)
        except BaseException:
            await area.deactivate()
            raise
    return Leg(index, text, area, handle)
