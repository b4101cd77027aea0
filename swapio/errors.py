"""The swapio exception tree.

Every error swapio raises derives from :class:`SwapioError`.  The tree says whose fault an
error is, in the style of h11 and httpcore:

* :class:`UsageError` — the caller asked for something invalid (bad URL, bad argument).
* :class:`PluginError` — a plugin could not be loaded or breaks the hook contract.
* :class:`AreaError` — a swap area refused the request (missing, wrong format, out of range).
* :class:`BackendIOError` — the store behind an area failed; carries what the peer said.
* :class:`ProtocolError` — a wire or on-disk format was violated, by us
  (:class:`LocalProtocolError`) or by the peer (:class:`RemoteProtocolError`).
* :class:`MemoryPressureError` — the page pool could not satisfy an allocation in time.
* :class:`SwapTimeoutError` — an operation did not complete within its deadline.

The CLI maps :class:`SwapioError` to one line on stderr and a documented exit code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SwapioError(Exception):
    """Root of every error swapio raises on purpose."""


class UsageError(SwapioError, ValueError):
    """The caller's input is invalid: a malformed URL, a bad size, an unknown name."""


class LocationError(UsageError):
    """A swap-area URL could not be parsed or names no known scheme."""


class PluginError(SwapioError):
    """A plugin failed to load or violates the hook contract."""


class SchemeConflictError(PluginError):
    """Two plugins claim the same URL scheme."""


class AreaError(SwapioError):
    """A swap area refused an operation."""


class AreaNotFoundError(AreaError, FileNotFoundError):
    """The store named by a location does not exist (and creation was not requested)."""


class AreaExistsError(AreaError, FileExistsError):
    """Creation was requested but the store already exists."""


class AreaFormatError(AreaError):
    """The store exists but is not usable as a swap area (holes, wrong size, foreign format)."""


class AreaFullError(AreaError):
    """No free slot (or no contiguous run of the requested length) is left in the area."""


class SlotRangeError(AreaError, IndexError):
    """A request addresses slots outside ``[0, area.pages)``."""


class PageSizeError(AreaError, UsageError):
    """A page size is not supported, or a buffer does not have the area's page size."""


class AreaInactiveError(AreaError):
    """The area has been deactivated (or is being deactivated) and accepts no new I/O."""


class ReadOnlyAreaError(AreaError):
    """The area was activated read-only (the store refused write access); writes are refused."""


class CapabilityError(AreaError):
    """The operation needs a capability the area did not declare (e.g. discard)."""


class BackendIOError(SwapioError, OSError):
    """The backing store failed an operation. ``detail`` holds what the peer reported."""

    def __init__(self, message: str, *, detail: object = None) -> None:
        super().__init__(message)
        self.detail = detail


class ProtocolError(SwapioError):
    """A wire or on-disk format was violated."""


class LocalProtocolError(ProtocolError):
    """We were about to violate the protocol (a bug or an impossible request)."""


class RemoteProtocolError(ProtocolError):
    """The peer (server, image, file) violated the protocol or format."""


class MemoryPressureError(SwapioError, MemoryError):
    """The page pool cannot satisfy an allocation."""


class AllocationTimeout(MemoryPressureError):
    """An allocation waited for reclaim longer than its timeout."""


class SwapTimeoutError(SwapioError, TimeoutError):
    """An operation did not complete within its deadline."""


class PoolUsageError(UsageError):
    """A page-pool buffer or counter was misused (released twice, accounting below zero)."""


class SchedulerClosedError(SwapioError):
    """The I/O scheduler was closed before the request could complete."""


class OutputError(SwapioError):
    """The command's output could not be written (stdout closed or full)."""
