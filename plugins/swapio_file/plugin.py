"""The ``file:///PATH`` backend: a swap area in a regular file or on a block device.

URL parameters: ``page_size`` (default 4096; the file has no header, so slot *n* is at byte
``n * page_size`` — which is what lets an md bitmap file or a raw image be used as an area),
``durable=1`` (``fdatasync`` before a swap-out completes; the area is then ``durable``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import swapio
from swapio.area import AreaState, Capabilities, PageBuffer, SwapArea, SwapInfo
from swapio.errors import BackendIOError, LocationError
from swapio.location import area_page_size
from swapio.owner import OwnerThread
from swapio_file import _about
from swapio_file.inline import InlinePath
from swapio_file.store import FileStore, copy_span, create_store, open_store

VERSION = _about.VERSION
PARAMS = frozenset({"page_size", "durable"})
#: ``IOV_MAX`` is 1024 on Linux; 256 pages keeps one request one ``pwritev``.
MAX_PAGES_PER_REQUEST = 256


def _path(area: SwapArea) -> str:
    loc = area.location
    loc.check_query(PARAMS)
    if loc.host not in ("", "localhost"):
        raise LocationError(
            f"{loc.url!r}: file URLs name a local path (file:///abs/path), got host {loc.host!r}"
        )
    if not loc.path.startswith("/"):
        raise LocationError(f"{loc.url!r}: file URLs need an absolute path")
    return loc.path


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("file",),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        state: _Open = area.private
        await state.owner.stop(state.store.close)
        return None
    path = _path(area)
    durable = area.location.query_bool("durable", False)
    page_size = area_page_size(area.location, area.create)
    # The owner thread opens (or creates) the store too: one thread per area, from the start.
    owner = OwnerThread(f"swapio-file:{path}", asyncio.get_running_loop())
    try:
        if area.create is not None:
            pages = area.create.pages
            store = await owner.submit(create_store, path, pages, page_size, durable)
        else:
            store = await owner.submit(open_store, path, page_size, durable)
    except BaseException:
        await owner.stop()
        raise
    return SwapInfo(
        pages=store.pages,
        page_size=store.page_size,
        capabilities=Capabilities(
            durable=durable,
            discard=True,
            max_pages_per_request=MAX_PAGES_PER_REQUEST,
            queue_depth=32,
            read_only=store.read_only,
        ),
        private=_Open(store, owner, InlinePath(store, owner)),
    )


@dataclass(frozen=True)
class _Open:
    """An active area's state: the store, the one thread that owns its descriptor, and the
    rules for running a request on the loop instead (:mod:`swapio_file.inline`)."""

    store: FileStore
    owner: OwnerThread
    inline: InlinePath


#: :meth:`InlinePath.write`: ``(offset, pages)`` → True when the write was done on the loop.
InlineWrite = Callable[[int, Sequence[PageBuffer]], bool]


def inline_writer(area: SwapArea) -> InlineWrite | None:
    """The first step of this plugin's :func:`swap_out` for ``area``: its inline write
    (:meth:`swapio_file.inline.InlinePath.write`, with all of its rules), or None when
    ``area`` is not an active area of this plugin.

    For a stacked area's plugin that calls a file area's hooks directly (the mirror, on its
    legs; docs/plugin-authors.md, "Stacked areas"): call it for ``page_size * slot`` and the
    pages, inside ``area.begin_request()`` … ``area.end_request()``, and call the ``swap_out``
    hook only when it returns False.  Valid only while ``area.hooks`` are this plugin's
    (compare them with the ones read when the step was taken).
    """
    state = area.private if area.state is AreaState.ACTIVE else None
    return state.inline.write if isinstance(state, _Open) else None


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    state: _Open = area.private
    offset = slot * state.store.page_size
    if not state.inline.write(offset, pages):
        await state.owner.submit(state.store.pwritev, offset, pages)


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    state: _Open = area.private
    offset = slot * state.store.page_size
    if not state.inline.read(offset, pages):
        await state.owner.submit(state.store.preadv, offset, pages)


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    state: _Open = area.private
    await state.owner.submit(state.store.zero, slot * state.store.page_size, count)


def _copy_range(src: FileStore, offset: int, dst: FileStore, dest_offset: int, size: int) -> None:
    """Copy ``size`` bytes in the kernel (:func:`copy_span`); ``fdatasync`` if durable."""
    copy_span(src, offset, dst, dest_offset, size)
    if dst.durable:
        try:
            os.fdatasync(dst.fd)
        except OSError as exc:
            raise BackendIOError(f"fdatasync of {dst.path} after a copy failed: {exc}") from exc


@swapio.hookimpl
async def swap_copy(area: SwapArea, slot: int, dest: SwapArea, dest_slot: int, count: int) -> None:
    src: _Open = area.private
    dst: _Open = dest.private
    size = src.store.page_size
    await dst.owner.submit(
        _copy_range, src.store, slot * size, dst.store, dest_slot * size, count * size
    )


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_file.bench)."""
    from swapio_file.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
