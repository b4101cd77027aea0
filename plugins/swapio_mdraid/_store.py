"""The bitmap store: an md bitmap image kept in a swap area, page by page.

The seed's point (DESIGN idea 1): md's external bitmap wrote raw blocks behind the
filesystem's back (``bmap()`` + ``submit_bh``); here the bitmap is an ordinary swap area on
any backend, activated through ``swapfile`` and read and written with ``swap_in`` /
``swap_out`` only.  Page *p* of the image (superblock + bits) is slot *p* of the area.
The area must be ``durable``: a bit that is "flushed before the data write" but lost in a
crash would leave differing legs with a clear bit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from swapio.area import CreateRequest, SwapArea
from swapio.errors import AreaError, AreaExistsError, AreaNotFoundError
from swapio.location import Location
from swapio.plugins import PluginHost
from swapio_mdraid import _locate
from swapio_mdraid._format import SUPERBLOCK_SIZE, Bitmap, BitmapSuperblock, bits_bytes
from swapio_mdraid.errors import BitmapFormatError

if TYPE_CHECKING:
    import tempfile

    from swapio.pool import PagePool


class NotDurableError(AreaError):
    """The area offered for a bitmap (or a resync target) does not declare ``durable``.

    A refusal by the area, like a wrong format: exit code 3 (``swapio.cli.exitcodes.AREA``),
    as the table in docs/bitmap-and-mirror.md says.
    """


class BitmapStore:
    """One bitmap image and the area it lives in."""

    def __init__(self, area: SwapArea, bitmap: Bitmap, name: str) -> None:
        self.area = area
        self.bitmap = bitmap
        self.name = name
        self.page_size = area.page_size
        self.writes = 0  # pages written, for tests and the benchmark
        self.requests = 0  # swap_out requests those pages took
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        #: ``(old size, new size)`` when opening padded an mdadm-sized file to whole pages.
        self.padded: tuple[int, int] | None = None

    # --- opening --------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: PluginHost,
        text: str,
        *,
        read_only: bool = False,
        pool: PagePool | None = None,
    ) -> BitmapStore:
        """Activate the area named by ``text`` and load the bitmap in it.

        An mdadm-made bitmap file that is not a whole number of pages is padded with zeros
        (see :func:`~swapio_mdraid._locate.pad_to_pages`) — unless ``read_only``: then the
        store reads a padded copy in a temporary directory and the file is left as it is.
        A ``read_only`` store need not be durable; it must not be written.  The area is
        activated on ``pool`` (None: the host's), and page writes allocate from it.
        """
        path = _locate.local_path(text)
        scratch: tempfile.TemporaryDirectory[str] | None = None
        target = text
        if path is not None and read_only:
            import tempfile  # noqa: PLC0415 - read-only opens only (random, hashlib: 6 ms)

            scratch = tempfile.TemporaryDirectory(prefix="swapio-bitmap-")
            copy = _locate.padded_copy(path, scratch.name)
            if copy is None:
                scratch.cleanup()
                scratch = None
            else:
                target = copy
        padded: tuple[int, int] | None = None
        if path is not None and not read_only:
            padded = _locate.pad_to_pages(path)
        try:
            area = await _locate.activate(host, target, pool=pool)
            try:
                if not read_only:
                    check_durable(area, "bitmap")
                bitmap = await load(area, text)
            except BaseException:
                await area.deactivate()
                raise
        except BaseException:
            if scratch is not None:
                scratch.cleanup()
            raise
        store = cls(area, bitmap, text)
        store._scratch = scratch
        store.padded = padded
        return store

    @classmethod
    async def create(
        cls, host: PluginHost, text: str, bitmap: Bitmap, *, pool: PagePool | None = None
    ) -> BitmapStore:
        """Create a new area just large enough for ``bitmap`` and write it whole.

        If anything fails after the area was created, a local file (path or ``file://``) is
        removed again, so a failed create leaves nothing behind; swapio has no hook to
        remove a store on other backends, so there it may stay (see the docs).
        """
        location = precheck(text)
        page_size = location.query_int("page_size", _locate.PATH_PAGE_SIZE, minimum=1)
        assert page_size is not None
        pages = bitmap.image_pages(page_size)
        area = await host.activate(location, create=CreateRequest(pages, page_size), pool=pool)
        try:
            check_durable(area, "bitmap")
            store = cls(area, bitmap, text)
            await store.write_pages(range(area.pages))
        except BaseException:
            try:
                await area.deactivate()
            finally:
                remove_created(text)
            raise
        return store

    async def close(self) -> None:
        try:
            await self.area.deactivate()
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None

    async def __aenter__(self) -> BitmapStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- I/O ------------------------------------------------------------------------

    async def write_pages(self, pages: Iterable[int]) -> None:
        """Write image pages, in the order given (the superblock page first, by the caller).

        Runs of adjacent pages go out in one ``swap_out`` request each (at most
        ``max_pages_per_request`` pages), so flushing many dirty bitmap pages costs one
        round trip per run, not one per page.  Each request's pages are encoded into one
        buffer of the area's pool (the mirror's, when the store is a mirror's), so under
        memory pressure a memalloc flush draws on the reserve the mirror declared.
        """
        size = self.page_size
        step = self.area.capabilities.max_pages_per_request
        for first, count in _runs(pages, step):
            with await self.area.pool.alloc(count * size) as buf:
                view = buf.view
                for i in range(count):
                    view[i * size : (i + 1) * size] = self.bitmap.page(first + i, size)
                await self.area.swap_out(
                    first, [view[i * size : (i + 1) * size] for i in range(count)]
                )
            self.writes += count
            self.requests += 1

    def pages_per_request(self, chunks: int) -> int:
        """Most image pages a flush for a write over ``chunks`` chunks writes (with page 0)."""
        return (chunks - 1) // (8 * self.page_size) + 2 + 1

    async def write_superblock(self) -> None:
        await self.write_pages([0])

    async def reload(self) -> Bitmap:
        """Read the bitmap again from the area (what a restarted process would see)."""
        self.bitmap = await load(self.area, self.name)
        return self.bitmap


def _runs(pages: Iterable[int], limit: int) -> list[tuple[int, int]]:
    """``(first, count)`` for each run of consecutive page numbers, in the order given, of at
    most ``limit`` pages."""
    runs: list[tuple[int, int]] = []
    for page in pages:
        if runs and runs[-1][0] + runs[-1][1] == page and runs[-1][1] < limit:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((page, 1))
    return runs


def precheck_new(text: str, role: str) -> None:
    """Refuse, before anything is created, a local store that exists or cannot be made."""
    path = _locate.local_path(text)
    if path is None:
        return
    if os.path.lexists(path):
        raise AreaExistsError(f"{role} {path} already exists; nothing was created")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise AreaNotFoundError(
            f"{role} {path}: directory {parent} does not exist; nothing was created"
        )


def remove_created(text: str) -> None:
    """Remove the local file behind ``text`` that this process just created (if any)."""
    path = _locate.local_path(text)
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def precheck(text: str) -> Location:
    """Refuse, before anything is created, a bitmap location known not to be durable."""
    location = _locate.location_of(text)
    if location.scheme == "file" and not location.query_bool("durable", False):
        raise NotDurableError(
            f"bitmap area {location} is not durable; add durable=1 to the file URL"
        )
    return location


def check_durable(area: SwapArea, role: str, name: str | None = None) -> None:
    """Refuse a non-durable area; ``name``: the area as the user typed it."""
    if not area.capabilities.durable:
        raise NotDurableError(
            f"{role} {name or area.location} is not durable (owner {area.owner!r}); a "
            "write-intent bitmap must survive a crash — use a durable backend "
            "(file URLs: durable=1)"
        )


async def load(area: SwapArea, name: str) -> Bitmap:
    """Read and decode the bitmap image from ``area``'s first pages."""
    page_size = area.page_size
    first = await area.read(0, 1)
    try:
        sb = BitmapSuperblock.decode(first)
    except BitmapFormatError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    need = SUPERBLOCK_SIZE + bits_bytes(sb.chunks)
    pages = -(-need // page_size)
    if pages > area.pages:
        raise BitmapFormatError(
            f"{name}: bitmap truncated: {sb.chunks} chunks need {need} bytes, the area holds "
            f"{area.pages * page_size}"
        )
    image = bytearray(first)
    if pages > 1:
        image += await area.read(1, pages - 1)
    try:
        return Bitmap.decode(image)
    except BitmapFormatError as exc:
        raise type(exc)(f"{name}: {exc}") from None
