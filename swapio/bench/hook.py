"""What a plugin hands ``swapio bench`` through the ``swapio_bench`` hook.

A plugin's ``swapio_bench()`` implementation returns :class:`BenchTarget` records: how to
place a fresh area of its backend (:attr:`BenchTarget.place`, which starts any server it
needs and removes everything on exit), how durable that area is, the software it needs, the
peers it should be compared with and workloads of its own.  The core bench names no backend:
everything it knows about one comes from here.  docs/plugin-authors.md ("Joining the bench")
walks through an example.

This module is imported by plugins: it has no side effects and imports nothing heavy.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from swapio.area import SwapArea
from swapio.bench.results import Kind, Latency, Result
from swapio.bench.targets import Target
from swapio.bench.workloads import BenchConfig

__all__ = [
    "BenchConfig",
    "BenchOption",
    "BenchPeer",
    "BenchSite",
    "BenchTarget",
    "BenchWorkload",
    "Durability",
    "Kind",
    "Latency",
    "Result",
    "Target",
]


class Durability(enum.StrEnum):
    """What survives when: the first thing an operator picks a swap backend by.

    * ``volatile`` — gone with the process (memory).
    * ``page cache`` — survives the process, not a crash of the machine (a file without
      ``fdatasync``).
    * ``durable`` — a completed swap-out is on stable storage (``fdatasync``, md bitmap).
    * ``remote`` — on another machine (NFS, a page server): survives this machine.
    """

    VOLATILE = "volatile"
    PAGE_CACHE = "page cache"
    DURABLE = "durable"
    REMOTE = "remote"


@dataclass(frozen=True)
class BenchOption:
    """A ``swapio bench --NAME VALUE`` option a target declares (e.g. ``--nfs URL``).

    The value (or ``$envvar``, or None) reaches the target as ``site.options[name]``.
    """

    name: str
    metavar: str
    help: str
    envvar: str | None = None


@dataclass
class BenchSite:
    """What the bench gives a target while it runs.

    :ivar directory: a fresh directory for this target under ``--dir`` (or the temp dir);
        the bench removes it afterwards.  Put images, exports and server state here.
    :ivar uid: this run's id: name areas and remote files after it (``bench-<uid>``).
    :ivar config: the run's sizes and limits (pages, page size, batch, queue depth, ...).
    :ivar options: values of the target's :class:`BenchOption` s (None when not given).
    """

    directory: Path
    uid: str
    config: BenchConfig
    options: Mapping[str, str | None] = field(default_factory=dict)
    #: What the target started, one phrase each (see :meth:`started`).
    started_notes: list[str] = field(default_factory=list)

    def started(self, what: str) -> None:
        """Record a process you started for the run; the bench lists them in one line."""
        self.started_notes.append(what)


#: ``place(site)``: an async context manager yielding the URL of a **fresh** area (the
#: bench creates it with ``CreateRequest(config.pages, config.page_size)``); on exit it
#: removes the area's store and stops whatever it started.
Placer = Callable[[BenchSite], AbstractAsyncContextManager[str]]


@dataclass(frozen=True)
class BenchPeer:
    """A tool the backend is compared with, in the same run and on the same workloads.

    Give exactly one of:

    * ``open(site, url)`` — an async context manager yielding a :class:`Target`; the bench
      runs the device workloads (``seq-out``, ``seq-in``, ``rand-out``, ``rand-in``) on it,
      exactly as on the backend;
    * ``measure(site, url, workloads)`` — runs the tool itself for the requested
      ``workloads`` (a subset of :attr:`workloads`) and returns one :class:`Result` per
      workload it measured (``kind=Kind.PEER``, ``target=name``).

    ``url`` is the backend's area URL in this run (an NFS peer finds the server there).
    Peers run while the backend's placement is open, after the backend's own workloads.
    """

    name: str
    durability: Durability
    summary: str
    #: The device workloads this peer can run; it is only run for the requested ones.
    workloads: tuple[str, ...] = ("seq-out", "seq-in", "rand-out", "rand-in")
    open: Callable[[BenchSite, str], AbstractAsyncContextManager[Target]] | None = None
    measure: Callable[[BenchSite, str, Sequence[str]], Awaitable[Sequence[Result]]] | None = None
    #: Executables that must be on PATH (``/usr/sbin`` and ``/sbin`` are searched too).
    needs: tuple[str, ...] = ()
    #: Python modules that must be importable.
    needs_modules: tuple[str, ...] = ()
    #: How to install what ``needs`` names (shown when it is missing).
    install_hint: str = ""


@dataclass(frozen=True)
class BenchWorkload:
    """A workload only this plugin knows how to run (the mirror's ``resync-1pct``).

    ``run(site)`` measures the backend and its peers once and returns their results, each
    with ``extra["bytes_copied"]`` when bytes moved is what compares (a resync).  The bench
    calls it ``config.repeat`` times and reports the median and the spread, ranked by
    seconds (less is better).  ``durability`` maps each result's target to its class.
    """

    name: str
    summary: str
    run: Callable[[BenchSite], Awaitable[Sequence[Result]]]
    durability: Mapping[str, Durability] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchTarget:
    """One row label in ``swapio bench``: a backend placed one way (``file``, ``file-durable``).

    :ivar name: the row label, unique across plugins; ``-b NAME`` selects it.
    :ivar backend: the backend it measures, as ``swapio backends`` names it; ``-b BACKEND``
        selects every target of that backend.
    :ivar durability: its :class:`Durability` class.
    :ivar place: the :data:`Placer`.
    :ivar needs: executables the placement needs; when one is missing the target is
        skipped with ``install_hint`` (and only then).
    :ivar options: command-line options the target takes (``--nfs URL``).
    :ivar peers: tools to compare it with; :ivar workloads: workloads of its own.
    :ivar remove: ``remove(url)`` deletes the store of an area at a user-given URL
        (``--url BACKEND=URL``) after the run; without it such an area is reused, not removed.
    :ivar medium_bytes: bytes written to the storage medium so far by ``area`` (flash wear);
        without it the bench counts the process's storage writes (``/proc/self/io``).
    :ivar mapped: ``mapped(url, tag)`` names a second area of this backend beside the one at
        ``url``, for the mapping workloads (``map-50``, ``map-seq``: a handler process
        creates and activates it), and the file a ``numpy.memmap`` can read for the same
        data, or None; without it those workloads skip the target.
    """

    name: str
    backend: str
    durability: Durability
    place: Placer
    summary: str = ""
    needs: tuple[str, ...] = ()
    install_hint: str = ""
    options: tuple[BenchOption, ...] = ()
    peers: tuple[BenchPeer, ...] = ()
    workloads: tuple[BenchWorkload, ...] = ()
    remove: Callable[[str], Awaitable[None]] | None = None
    medium_bytes: Callable[[SwapArea], int] | None = None
    mapped: Callable[[str, str], tuple[str, Path | None]] | None = None
