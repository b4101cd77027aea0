"""The ``flashlog:///IMAGE?name=/swapfile`` backend: swap areas as files in a JFFS2 log.

URL parameters: ``name`` (the file in the image, default ``/swapfile``), ``page_size``,
and, for creating a new image, ``size``, ``erase_block`` (default 65536), ``write_unit``
(default 4) and ``cleanmarkers``; for any mount ``summary`` (default 1: read and write
erase-block summaries), ``reserve`` (reserved erase blocks, default 2), ``policy``
(``greedy`` or ``jffs2``) and ``sync`` (``fdatasync`` after every write).

One image may hold several swap files; every area on the same image shares one mounted
log, owned by one thread (:class:`swapio.owner.OwnerThread`, aiosqlite style): each request
crosses to it once, and requests queued meanwhile cross together.  The mounted image is
locked against other processes (see :mod:`swapio_flashlog.device`).

Memory: each swap-out and discard allocates one erase block of scratch from the area's page
pool (:mod:`swapio.pool`, in memalloc context when the caller is), unless it joins a batch
already waiting, which has one: a swap-out lays its nodes' headers out in it and programs
them with the pages (one ``pwritev``), a discard lays its node out in it.  That one erase
block is the request's declared reserve need (``reserve_pages_per_request``).  Garbage
collection (foreground or background) needs no pool buffer: it programs the live nodes
straight from its read of the victim.

Creating an area checks the name, the size and whether it fits before an image is formatted;
if it still fails, an image this activation formatted is removed again (with its sidecar).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import swapio
from swapio.area import (
    Capabilities,
    CreateRequest,
    PageBuffer,
    SwapArea,
    SwapInfo,
)
from swapio.errors import AreaFormatError, LocationError, UsageError
from swapio.location import area_page_size
from swapio.owner import OwnerThread
from swapio_flashlog import _about
from swapio_flashlog._inline import InlineRule
from swapio_flashlog._nodes import INODE_SIZE, JFFS2_PAGE, SUM_INODE_SIZE, pad
from swapio_flashlog._plug import WriteQueue
from swapio_flashlog.cli import flash
from swapio_flashlog.device import (
    MIN_BLOCKS,
    Geometry,
    image_geometry,
    image_size,
    remove_image,
)
from swapio_flashlog.log import (
    FlashLog,
    LogOptions,
    capacity_chunks,
    check_file_size,
    fit_error,
    new_file_name,
)

if TYPE_CHECKING:
    import click

    from swapio.scheduler import IOScheduler

VERSION = _about.VERSION
PARAMS = frozenset(
    {
        "name",
        "page_size",
        "size",
        "erase_block",
        "write_unit",
        "cleanmarkers",
        "summary",
        "reserve",
        "policy",
        "sync",
    }
)
MAX_PAGES_PER_REQUEST = 64


@dataclass
class SharedLog:
    """One mounted image and the single thread that owns it."""

    path: str
    log: FlashLog
    owner: OwnerThread
    users: int = 0
    #: Formatted by the activation that mounted it, and no swap file attached yet: a
    #: failed create removes it again.
    created: bool = False


@dataclass
class FlashArea:
    """Per-area state (``area.private``)."""

    shared: SharedLog
    ino: int
    name: str
    page_size: int
    pages: int
    #: Its plugged swap-outs (set once the area is active, on the event loop).
    writes: WriteQueue | None = None

    @property
    def log(self) -> FlashLog:
        return self.shared.log

    @property
    def reserve_erase_blocks(self) -> int:
        """Erase blocks kept back for garbage collection (the flash twin of the page
        reserve the area's capabilities declare)."""
        return self.shared.log.options.reserve_blocks

    @property
    def scratch_bytes(self) -> int:
        """The pool buffer one request allocates: one erase block (a request's nodes are
        programmed at most one erase block at a time)."""
        return self.shared.log.eb


_open_logs: dict[str, SharedLog] = {}
_registry_lock = threading.Lock()


def _options(area: SwapArea, create: bool) -> LogOptions:
    loc = area.location
    policy = loc.query.get("policy", "greedy")
    if policy not in ("greedy", "jffs2"):
        raise LocationError(f"{loc.url!r}: policy={policy!r}; expected greedy or jffs2")
    cleanmarkers: bool | None = None
    if "cleanmarkers" in loc.query:
        if not create:
            raise LocationError(f"{loc.url!r}: cleanmarkers= only applies when creating")
        cleanmarkers = loc.query_bool("cleanmarkers")
    return LogOptions(
        summaries=loc.query_bool("summary", True),
        cleanmarkers=True if create and cleanmarkers is None else cleanmarkers,
        reserve_blocks=loc.query_int("reserve", 2, minimum=1) or 2,
        policy="jffs2" if policy == "jffs2" else "greedy",
        sync=loc.query_bool("sync", False),
    )


def default_size(data: int, page_size: int, erase_block: int, reserve: int) -> int:
    """An image size that keeps ``data`` bytes, written in ``page_size`` pages, at no more
    than 80 % of the node space, plus the reserved blocks and the two write heads."""
    node = min(page_size, JFFS2_PAGE)
    per_block = (erase_block - 52) // (pad(INODE_SIZE + node) + SUM_INODE_SIZE)
    if per_block == 0:
        raise UsageError(
            f"an erase block of {erase_block} bytes holds no {node}-byte data node with its "
            "header, cleanmarker and summary; use a larger erase_block"
        )
    nodes = -(-data // node)
    blocks = -(-nodes * 5 // (4 * per_block)) + reserve + 2
    return max(blocks, 5) * erase_block


def _geometry(area: SwapArea, create: CreateRequest, reserve: int) -> Geometry:
    loc = area.location
    eb = loc.query_int("erase_block", 64 * 1024, minimum=1) or 64 * 1024
    wu = loc.query_int("write_unit", 4, minimum=1) or 4
    size = loc.query_int("size", None, minimum=1)
    if size is None:
        Geometry(MIN_BLOCKS * eb, eb, wu)  # the erase block and write unit, checked first
        size = default_size(create.pages * create.page_size, create.page_size, eb, reserve)
    return Geometry(size, eb, wu)


def _check_new(area: SwapArea, create: CreateRequest, geometry: Geometry, reserve: int) -> None:
    """Everything a create on a new image could refuse, checked before formatting it."""
    new_file_name(area.location.query.get("name", "/swapfile"))
    size = create.pages * create.page_size
    check_file_size(size)
    need = -(-size // JFFS2_PAGE)
    capacity = capacity_chunks(geometry.erase_block, geometry.blocks, reserve, create.page_size)
    if need > capacity:
        raise fit_error(area.location.path, size, need, capacity, create.page_size, reserve)


def _path(area: SwapArea) -> str:
    loc = area.location
    loc.check_query(PARAMS)
    if loc.host not in ("", "localhost"):
        raise LocationError(f"{loc.url!r}: flashlog URLs name a local image (flashlog:///path)")
    if not loc.path.startswith("/"):
        raise LocationError(f"{loc.url!r}: flashlog URLs need an absolute image path")
    if "\0" in loc.path:
        raise LocationError(f"{loc.url!r}: the image path contains a NUL byte (%00)")
    return loc.path


def _attach_log(area: SwapArea, loop: asyncio.AbstractEventLoop) -> SharedLog:
    """Find or mount (or format) the image; count one more user.  Blocking."""
    path = _path(area)
    loc = area.location
    create = area.create
    options = _options(area, create is not None)
    key = os.path.realpath(path)
    with _registry_lock:
        shared = _open_logs.get(key)
        if shared is None:
            created = create is not None and not os.path.lexists(path)
            if created and create is not None:
                geometry = _geometry(area, create, options.reserve_blocks)
                _check_new(area, create, geometry, options.reserve_blocks)
                log = FlashLog.format(path, geometry, options)
            else:
                given = None
                if "erase_block" in loc.query or "size" in loc.query:
                    eb = loc.query_int("erase_block", 64 * 1024, minimum=1) or 64 * 1024
                    wu = loc.query_int("write_unit", 4, minimum=1) or 4
                    size = loc.query_int("size", None, minimum=1)
                    if size is None:  # the image's own size: its fault if it does not fit
                        given = image_geometry(path, image_size(path), eb, wu)
                    else:
                        given = Geometry(size, eb, wu)
                log = FlashLog.open(path, given, options)
            shared = SharedLog(
                key, log, OwnerThread(f"swapio-flashlog:{path}", loop), created=created
            )
            _open_logs[key] = shared
        shared.users += 1
    return shared


def _attach_file(shared: SharedLog, area: SwapArea) -> FlashArea:
    """Create or look up the swap file.  Runs in the log's own thread."""
    loc = area.location
    name = loc.query.get("name", "/swapfile")
    log = shared.log
    create = area.create
    page_size = area_page_size(loc, create)
    if create is not None:
        ino = log.create_file(name, create.pages * page_size, page_size)
    else:
        ino = log.lookup(name)
    isize = log.file(ino).isize
    if isize == 0 or isize % page_size:
        raise AreaFormatError(
            f"{shared.path}:{name}: file size {isize} is not a positive multiple of the page "
            f"size {page_size}"
        )
    shared.created = False  # a swap file lives in it now: never removed
    return FlashArea(shared, ino, name, page_size, isize // page_size)


def _release(shared: SharedLog, failed_create: bool) -> bool:
    """One user fewer; the last one closes the log (True).  Runs in the log's thread, after
    everything queued before it.

    ``failed_create``: the user's activation failed; if the image was formatted for it
    and holds no swap file, remove it (still locked, so nobody else saw it)."""
    with _registry_lock:  # held while closing: a new activation waits, then re-mounts
        shared.users -= 1
        if shared.users > 0:
            return False
        del _open_logs[shared.path]
        try:
            if failed_create and shared.created:
                remove_image(shared.log.device.path)
        finally:
            shared.log.close()
        return True


async def _detach(shared: SharedLog, failed_create: bool = False) -> None:
    if await shared.owner.submit(_release, shared, failed_create):
        await shared.owner.stop()


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("flashlog",),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
def swapio_add_commands(cli: click.Group) -> None:
    cli.add_command(flash)


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        state: FlashArea = area.private
        await _detach(state.shared)
        return None
    loop = asyncio.get_running_loop()
    shared = await loop.run_in_executor(None, _attach_log, area, loop)
    try:
        state = await shared.owner.submit(_attach_file, shared, area)
    except BaseException:
        await _detach(shared, failed_create=True)
        raise
    inline = InlineRule(shared.owner, enabled=not shared.log.options.sync)
    state.writes = WriteQueue(shared.owner, shared.log.write_many, state.ino, inline)
    return SwapInfo(
        pages=state.pages,
        page_size=state.page_size,
        capabilities=Capabilities(
            durable=True,
            discard=True,
            max_pages_per_request=MAX_PAGES_PER_REQUEST,
            queue_depth=32,
            reserve_pages_per_request=area.pool.pages_for(state.scratch_bytes),
        ),
        private=state,
    )


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    state: FlashArea = area.private
    writes = state.writes
    assert writes is not None
    if writes.waiting:  # joins the queued batch, which has its buffer
        await writes.write(slot * state.page_size, pages, None)
        return
    scratch = await area.pool.alloc(state.scratch_bytes)
    try:
        done = writes.write(slot * state.page_size, pages, scratch)
    except BaseException:
        scratch.release()
        raise
    await done


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    state: FlashArea = area.private
    size = state.page_size

    def fill() -> None:
        for i, view in enumerate(pages):
            state.log.read(state.ino, (slot + i) * size, view.cast("B"))

    await state.shared.owner.submit(fill)


@swapio.hookimpl
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    state: FlashArea = area.private
    size = state.page_size
    scratch = await area.pool.alloc(state.scratch_bytes)
    try:
        await state.shared.owner.submit(
            state.log.discard, state.ino, slot * size, count * size, scratch.view
        )
    finally:
        scratch.release()


# --- background garbage collection ---------------------------------------------------------


async def gc_step(area: SwapArea) -> bool:
    """Run one GC step on the area's log, in its thread; False if nothing to collect.  A
    step takes no pool buffer: the live nodes are programmed straight from the victim's
    read (:meth:`swapio_flashlog._append.Appender.copy_nodes`)."""
    state: FlashArea = area.private
    return await state.shared.owner.submit(state.log.gc_step)


async def run_background_gc(
    area: SwapArea,
    scheduler: IOScheduler | None = None,
    *,
    interval: float = 0.05,
    stop: asyncio.Event | None = None,
) -> int:
    """Collect garbage in the background until ``stop`` is set; return the steps taken.

    Background class: a step runs only while the log wants one (:meth:`FlashLog.gc_wanted`)
    and, when a :class:`swapio.scheduler.IOScheduler` is given, only while it has nothing
    in flight or queued for the area, so foreground swap I/O always goes first.
    """
    state: FlashArea = area.private
    stop = stop or asyncio.Event()
    steps = 0
    while not stop.is_set():
        busy = False
        if scheduler is not None:
            snap = scheduler.stats(area)
            busy = bool(snap.inflight or snap.pending)
        wanted = not busy and await state.shared.owner.submit(state.log.gc_wanted)
        if wanted and await gc_step(area):
            steps += 1
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return steps


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_flashlog.bench)."""
    from swapio_flashlog.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
