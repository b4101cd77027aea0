"""The swapio hook specification.

A backend plugin is a module (or object) with functions marked ``@swapio.hookimpl``.  Two
kinds of hooks exist:

**Registration hooks** (synchronous, broadcast to every plugin):
:func:`swapio_backend`, :func:`swapio_add_commands` and :func:`swapio_bench`.

**Data hooks** (``async def``; never broadcast): :func:`swapfile`, :func:`swap_out`,
:func:`swap_in` and :func:`swap_discard` — the names of the original "Swap over NFS" series
(``swap_activate``/``swap_deactivate`` became ``swapfile`` here; ``swap_rw`` is split by
direction).  pluggy has no async support and a ``firstresult`` broadcast would stop at the
first coroutine, so the host resolves the *owner* of an area once, at activation, by URL
scheme, and binds that plugin's implementations to the :class:`~swapio.area.SwapArea`.  The
per-page path never goes through ``pm.hook``.  pluggy still validates every implementation's
argument names against these specs when the plugin is registered.

Concurrency rules common to the data hooks: the core calls them from one asyncio event loop;
several requests on one area may be in flight at once (up to ``queue_depth``), never two that
overlap in slots *and* include a write.  Implementations must not block the event loop:
blocking I/O crosses to a thread once per request, never once per page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from swapio.area import PageBuffer, SwapArea, SwapInfo
    from swapio.bench.hook import BenchTarget
    from swapio.plugins import BackendInfo

PROJECT = "swapio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The data hooks: async, bound per area to the owning plugin.
DATA_HOOKS = ("swapfile", "swap_out", "swap_in", "swap_discard", "swap_copy")
#: Data hooks an owner of a scheme must implement.
REQUIRED_DATA_HOOKS = ("swapfile", "swap_out", "swap_in")
#: The registration hooks: synchronous, broadcast.
REGISTRATION_HOOKS = ("swapio_backend", "swapio_add_commands", "swapio_bench")


@hookspec
def swapio_backend() -> BackendInfo | None:
    """Describe the backend this plugin provides.

    :returns: a :class:`~swapio.plugins.BackendInfo` with the backend's name, version, the
        URL schemes it serves (e.g. ``("nfs",)``) and a one-line summary; ``None`` if the
        plugin serves no scheme (a CLI-only plugin, for instance).

    Called once per plugin when the host builds its scheme table.  A scheme claimed by two
    plugins is a :class:`~swapio.errors.SchemeConflictError` naming both.  Must be
    synchronous and cheap (no I/O).
    """


@hookspec
def swapio_add_commands(cli: click.Group) -> None:
    """Add subcommands to the ``swapio`` command line.

    :param cli: the root :class:`click.Group`; call ``cli.add_command(...)``.

    Called once when the CLI starts — or, for a plugin that names its verbs in the
    ``swapio.commands`` entry-point group (docs/plugin-authors.md, "Register"), only when one
    of those verbs runs, on a scratch group; it must then add exactly those verbs.
    Synchronous.  A command's user errors should raise
    :class:`swapio.errors.SwapioError` (the CLI prints one line and exits non-zero).
    """


@hookspec
def swapio_bench() -> Sequence[BenchTarget]:
    """Contribute this plugin's targets to ``swapio bench`` (the backend comparison).

    :returns: a sequence of :class:`~swapio.bench.hook.BenchTarget` (empty, or ``[]``, if
        the plugin has nothing to measure).  Each says which backend it measures, its
        durability class (``volatile``, ``page cache``, ``durable``, ``remote``), how to
        *place* a fresh area (an async context manager factory ``place(site)`` yielding the
        area's URL; it starts any server the area needs, under ``site.directory``, and on
        exit removes the area and stops what it started), the executables it needs (a
        missing one skips the target with ``install_hint``), command-line options it takes
        (``--nfs URL``), its peers (tools measured beside it on the same workloads) and
        workloads of its own (the mirror's ``resync-1pct``).

    Called once per ``swapio bench`` run, on every plugin, before the command line is
    parsed (options come from it).  Must be synchronous and cheap: import your bench module
    inside the implementation, start nothing here (start servers in ``place``).  Target
    names must be unique across plugins; a duplicate is a
    :class:`~swapio.errors.PluginError` naming both plugins.

    Errors: return nothing rather than raise when the backend cannot be benchmarked on this
    machine for a reason ``needs`` cannot express; an exception here is reported as the
    plugin breaking the hook contract.
    Concurrency: ``place``, ``open`` and ``measure`` run on the bench's event loop, one
    target at a time; blocking work goes to a thread (``asyncio.to_thread``).
    Durability: the class a target declares is what the report ranks it by, so declare
    ``durable`` only if a completed swap-out survives a crash of the machine.
    """
    return ()


@hookspec
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    """Activate or deactivate the store at ``area.location`` as a swap area.

    :param area: the area being (de)activated.  ``area.location`` is the parsed URL;
        ``area.create`` is a :class:`~swapio.area.CreateRequest` (``pages``, ``page_size``)
        when the caller asks to create a new store, else ``None``; ``area.pool`` is the page
        pool transient buffers must come from.
    :param activate: ``True`` to activate (``swap_activate``), ``False`` to deactivate.
    :returns: on activation, a :class:`~swapio.area.SwapInfo`: slot count, page size,
        :class:`~swapio.area.Capabilities` (``durable``, ``discard``,
        ``max_pages_per_request``, ``queue_depth`` and the reserve need) and ``private``
        state the other hooks find as ``area.private``.  On deactivation, ``None``.

    Errors: :class:`~swapio.errors.AreaNotFoundError` (store missing, no create),
    :class:`~swapio.errors.AreaExistsError` (create over an existing store),
    :class:`~swapio.errors.AreaFormatError` (holes, wrong size, foreign format — as Linux
    ``swapon`` refuses a file with holes), :class:`~swapio.errors.LocationError` (bad URL
    parameters), :class:`~swapio.errors.BackendIOError` (the store failed).  A failed
    activation must leave an existing store untouched.

    Concurrency: activation runs before any I/O; deactivation runs after the area has
    drained all in-flight I/O, and must release every resource it holds.
    Durability: after deactivation of a ``durable`` area every completed swap-out is on
    stable storage.
    """


@hookspec
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    """Write ``len(pages)`` pages to consecutive slots ``slot, slot+1, ...``.

    :param area: an active area owned by this plugin.
    :param slot: first slot; the core has checked ``0 <= slot`` and
        ``slot + len(pages) <= area.pages``.
    :param pages: bytes-like objects of exactly ``area.page_size`` bytes each, at most
        ``max_pages_per_request`` of them (the core splits longer requests).  They may be
        views of pool buffers: do not keep references after returning.

    Errors: :class:`~swapio.errors.BackendIOError` (or a subclass) when the store fails.
    On error, none of the pages may be assumed written: the caller keeps them dirty.

    Durability: on return the data is what a later ``swap_in`` of those slots returns; if the
    area declared ``durable``, it also survives a crash of this process and a restart of the
    store (file: ``fdatasync``; NFS: after ``COMMIT`` with a matching write verifier).
    Concurrency: may run concurrently with other requests on the same area.
    """


@hookspec
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    """Read consecutive slots from ``slot`` into ``pages``.

    :param area: an active area owned by this plugin.
    :param slot: first slot (range checked by the core).
    :param pages: writable views of exactly ``area.page_size`` bytes each, at most
        ``max_pages_per_request``; fill every byte.

    A slot never written since creation (or discarded) reads as zeros.  A slot whose newest
    completed write cannot be read back intact raises — an older version must never be
    returned as if it were current.

    Errors: :class:`~swapio.errors.BackendIOError` and subclasses.
    Concurrency: may run concurrently with other requests on the same area.
    """


@hookspec
async def swap_discard(area: SwapArea, slot: int, count: int) -> None:
    """The contents of ``count`` slots from ``slot`` are no longer needed (``SWP_PAGE_DISCARD``).

    Only called on areas whose capabilities declare ``discard``.  After it returns, those
    slots read as zeros.  Errors: :class:`~swapio.errors.BackendIOError`.
    """


@hookspec
async def swap_copy(area: SwapArea, slot: int, dest: SwapArea, dest_slot: int, count: int) -> None:
    """Copy ``count`` slots from ``slot`` of ``area`` to ``dest_slot`` of ``dest``: one request.

    Optional.  A range copy between two areas of the same backend without moving the bytes
    through the event loop (the file backend: ``copy_file_range(2)``, which the kernel may
    serve by reflink or a server-side copy).  Callers use
    :meth:`swapio.area.SwapArea.copy`; the core calls this hook only when ``area`` and
    ``dest`` are both owned by this plugin, and otherwise (or when the plugin does not
    implement it) copies by ``swap_in`` + ``swap_out`` itself, in pieces of at most
    ``max_pages_per_request`` pages with buffers from ``area.pool``.

    :param area: the source, an active area owned by this plugin.
    :param slot: first source slot; the core checked ``slot + count <= area.pages``.
    :param dest: the destination, an active area owned by this plugin (possibly ``area``
        itself: then the core has refused overlapping ranges), not read-only, with the same
        ``page_size``.
    :param dest_slot: first destination slot (range checked by the core).
    :param count: pages to copy, ``>= 1``; **not** bounded by ``max_pages_per_request``
        (nothing is buffered by the caller): an implementation splits as it needs.

    On return, a ``swap_in`` of the destination slots returns what the source slots held
    when the copy started; if ``dest`` is ``durable``, that survives a crash as for
    ``swap_out``.  The source is not modified.

    Errors: :class:`~swapio.errors.BackendIOError` (or a subclass) when either store fails
    (name the one that did); on error, none of the destination slots may be assumed
    written.  Concurrency: counted in flight on both areas; the caller keeps writes off
    both ranges meanwhile, as for any request.
    """
