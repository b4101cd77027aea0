"""A resync batch into a file leg: every range copy in one owner-thread job.

``SwapArea.copy`` is one request per range (the ``swap_copy`` hook: one ``copy_file_range``
loop in the target's owner thread, an ``fdatasync`` if the target is durable).  A resync
copies a batch of up to 32 MiB of scattered runs; as requests, each run costs a coroutine,
a future and the core's checks on the loop (~20 µs) — about as long as the kernel takes to
copy a 64 KiB chunk.  When the source and the target are both ``file`` areas, this module
does what the file backend's ``swap_copy`` does, for the whole batch at once:

* one job in the **target's owner thread** (the file backend's rule: one thread per
  descriptor, requests in order; its ``swap_copy`` runs there too and reads the source's
  descriptor from it), which loops ``copy_file_range(2)`` over the runs — falling back to
  ``pread``/``pwrite`` where the kernel cannot copy between the files (``EXDEV``, ...),
  as the backend does;
* **no** ``fdatasync`` per run, even into the durable area: the resync's barrier
  (:meth:`FileRanges.sync`, one ``fdatasync`` of the target) makes every earlier copy
  durable before any bit is cleared.  So no second, non-durable activation of the target
  (the bulk twin) is needed either;
* the area contract is kept, as for any stacked area (``SwapArea.begin_request``): both
  areas must be active and the job is counted in flight on both (their ``deactivate``
  drains it).

A run whose copy failed, and every run after it in the job, is reported failed (its bits
stay set); the runs before it are done.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from swapio_file.store import copy_span

from swapio.area import SwapArea
from swapio.errors import BackendIOError

__all__ = ["FileRanges", "file_store"]

#: The ``file`` backend's name (``swapio_file``): its areas' private state is read here.
FILE_PLUGIN = "file"

Span = tuple[int, int]  # byte offset, length


def file_store(area: SwapArea) -> Any:
    """The open store (``fd``, ``path``) of a ``file`` area, or None for any other area."""
    if area.owner != FILE_PLUGIN:
        return None
    store = getattr(area.private, "store", None)
    return store if isinstance(getattr(store, "fd", None), int) else None


def _copy_spans(src: Any, dst: Any, spans: Sequence[Span]) -> list[BaseException | None]:
    """Run in the target's owner thread: every span, in order; per span None or its error
    (the spans after a failure are not tried and carry the same error)."""
    results: list[BaseException | None] = []
    for offset, length in spans:
        try:
            copy_span(src, offset, dst, offset, length)
        except BackendIOError as exc:
            return results + [exc] * (len(spans) - len(results))
        results.append(None)
    return results


def _sync(dst: Any) -> None:
    try:
        os.fdatasync(dst.fd)
    except OSError as exc:
        raise BackendIOError(f"{dst.path}: fdatasync failed: {exc}") from exc


class FileRanges:
    """Batched range copies into one ``file`` target area (see the module docstring)."""

    def __init__(self, area: SwapArea, store: Any) -> None:
        self.area = area
        self._store = store
        self._owner = area.private.owner

    @classmethod
    def of(cls, area: SwapArea) -> FileRanges | None:
        """For a ``file`` area with an owner thread; None for any other area."""
        store = file_store(area)
        if store is None or not hasattr(getattr(area.private, "owner", None), "submit"):
            return None
        return cls(area, store)

    async def copy(self, source: SwapArea, spans: Sequence[Span]) -> list[BaseException | None]:
        """Copy every span (bytes, same offsets) from ``source`` (a ``file`` area) in one
        owner-thread job; per span None or the error that stopped it."""
        src = file_store(source)
        if src is None:
            raise BackendIOError(f"{source.location}: not a file area; cannot range-copy")
        source.begin_request()
        try:
            self.area.begin_request()
            try:
                results: list[BaseException | None] = await self._owner.submit(
                    _copy_spans, src, self._store, spans
                )
                return results
            finally:
                self.area.end_request()
        finally:
            source.end_request()

    async def sync(self) -> None:
        """Every copy into the target completed before the call is durable on return."""
        self.area.begin_request()
        try:
            await self._owner.submit(_sync, self._store)
        finally:
            self.area.end_request()
