"""Swap areas: the activation record and the owner's bound operations.

A :class:`SwapArea` is what ``swapon`` produces in Linux: a ``swap_info_struct`` with the
geometry and flags the filesystem's ``swap_activate`` reported, plus the operations to reach
the store (``swap_rw``).  Here the owner plugin's ``swapfile`` hook fills in a
:class:`SwapInfo`; the area then calls that plugin's ``swap_out`` / ``swap_in`` /
``swap_discard`` implementations directly — never through a pluggy broadcast.

"Swap-backed" is a property of activation (DESIGN idea 2): an area's reserve need is added
to its pool when it is activated and removed when it is deactivated, whatever the store is.

Deactivation **drains**: it refuses new I/O at once (:class:`AreaInactiveError`), waits for
requests already in flight to finish, then calls ``swapfile(area, activate=False)``.  It
never cancels in-flight swap-outs, because a cancelled swap-out is a page whose only copy
may be the one being written.

A **stacked** area (md's RAID1 calling its members' ``submit_bio`` after checking the bio
once against the array) may call another area's owner hooks itself, through
:meth:`SwapArea.begin_request` / :meth:`SwapArea.end_request` and :attr:`SwapArea.hooks`:
the state is checked and the request counted in flight exactly as the area's own methods
do (docs/plugin-authors.md, "Stacked areas").
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from swapio.errors import (
    AreaInactiveError,
    CapabilityError,
    PageSizeError,
    PluginError,
    ReadOnlyAreaError,
    SlotRangeError,
    SwapTimeoutError,
    UsageError,
)
from swapio.location import Location
from swapio.slotmap import SlotMap

if TYPE_CHECKING:
    from swapio.plugins import PluginHost
    from swapio.pool import PagePool

#: A page handed to ``swap_out``: any bytes-like object of exactly ``page_size`` bytes.
PageBuffer: TypeAlias = bytes | bytearray | memoryview

DEFAULT_PAGE_SIZE = 4096
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 1 << 20


def check_page_size(page_size: int) -> int:
    """Return ``page_size`` if it is a power of two in [512, 1 MiB]; else raise PageSizeError."""
    if (
        not isinstance(page_size, int)
        or page_size < MIN_PAGE_SIZE
        or page_size > MAX_PAGE_SIZE
        or page_size & (page_size - 1)
    ):
        raise PageSizeError(
            f"page size {page_size!r} is not a power of two between {MIN_PAGE_SIZE} "
            f"and {MAX_PAGE_SIZE} bytes"
        )
    return page_size


@dataclass(frozen=True)
class Capabilities:
    """What an activated area offers; flags, not ``hasattr`` probes.

    ``read_only`` areas refuse ``swap_out`` and ``discard`` with
    :class:`~swapio.errors.ReadOnlyAreaError` (the store could only be opened for reading,
    e.g. an immutable file or a read-only mount: ``swapio info``/``read`` still work).

    ``reserve_pages_per_request`` is the number of pool pages one in-flight request needs to
    complete under memory pressure (request and reply buffers); ``memalloc_requests`` is how
    many memalloc requests may be in flight at once.  Their product is the area's reserve
    need, added to the pool's reserve at activation (``sk_adjust_memalloc``).
    """

    durable: bool = False
    discard: bool = False
    max_pages_per_request: int = 256
    queue_depth: int = 32
    reserve_pages_per_request: int = 0
    memalloc_requests: int = 1
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.max_pages_per_request < 1:
            raise UsageError(
                f"max_pages_per_request must be >= 1, got {self.max_pages_per_request}"
            )
        if self.queue_depth < 1:
            raise UsageError(f"queue_depth must be >= 1, got {self.queue_depth}")
        if self.reserve_pages_per_request < 0 or self.memalloc_requests < 0:
            raise UsageError("reserve needs cannot be negative")

    @property
    def reserve_need(self) -> int:
        """Pool pages this area adds to the reserve while it is active."""
        return self.reserve_pages_per_request * self.memalloc_requests

    @staticmethod
    def check_names(names: Iterable[str], backend: str) -> tuple[str, ...]:
        """Return ``names`` as a tuple if each is one of :data:`CAPABILITY_NAMES`.

        These are the names a backend lists in ``BackendInfo.capabilities`` (what ``swapio
        backends`` shows).  An unknown name (a typo) raises :class:`PluginError` naming the
        backend, the unknown name, the closest known one and every known name.
        """
        if isinstance(names, str):
            raise PluginError(
                f"backend {backend!r}: capabilities must be a tuple of names, not the string "
                f"{names!r} (write ({names!r},))"
            )
        given = tuple(names)
        known = ", ".join(sorted(CAPABILITY_NAMES))
        for name in given:
            if name not in CAPABILITY_NAMES:
                import difflib  # noqa: PLC0415 - only a typo needs it, not every start

                close = difflib.get_close_matches(str(name), CAPABILITY_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PluginError(
                    f"backend {backend!r}: unknown capability {name!r}{hint}; known: {known}"
                )
        return given


#: The capability names a backend may list in ``BackendInfo.capabilities``, and what each
#: promises about the areas it activates (each area reports its own :class:`Capabilities`).
CAPABILITY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "create": "creates (formats) a new store when asked (CreateRequest)",
        "discard": "areas may offer swap_discard (Capabilities.discard)",
        "durable": "areas may be durable: a completed swap_out survives a crash "
        "(Capabilities.durable)",
        "reserve": "areas declare a reserve need for swap-out under memory pressure "
        "(Capabilities.reserve_pages_per_request x memalloc_requests)",
    }
)


@dataclass(frozen=True)
class CreateRequest:
    """Ask the owner to create (format) a new store of ``pages`` slots of ``page_size``."""

    pages: int
    page_size: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.pages, int) or self.pages <= 0:
            raise UsageError(f"a swap area needs at least one page, got {self.pages!r}")
        check_page_size(self.page_size)


@dataclass(frozen=True)
class SwapInfo:
    """What ``swapfile(activate=True)`` reports: geometry, capabilities, private state."""

    pages: int
    page_size: int
    capabilities: Capabilities = field(default_factory=Capabilities)
    private: Any = None


class AreaState(enum.Enum):
    """Lifecycle of an area (``SWP_USED`` → ``SWP_WRITEOK`` → off)."""

    ACTIVATING = "activating"
    ACTIVE = "active"
    DRAINING = "draining"
    INACTIVE = "inactive"


# a module global for begin_request: reading a member off the enum class costs ~50 ns more
# per call on 3.11 (timeit)
_ACTIVE = AreaState.ACTIVE


SwapfileOp = Callable[["SwapArea", bool], Awaitable["SwapInfo | None"]]
SwapOutOp = Callable[["SwapArea", int, Sequence[PageBuffer]], Awaitable[None]]
SwapInOp = Callable[["SwapArea", int, Sequence[memoryview]], Awaitable[None]]
DiscardOp = Callable[["SwapArea", int, int], Awaitable[None]]
CopyOp = Callable[["SwapArea", int, "SwapArea", int, int], Awaitable[None]]


@dataclass(frozen=True)
class BoundOps:
    """The owner plugin's implementations, resolved once at activation."""

    plugin_name: str
    swapfile: SwapfileOp
    swap_out: SwapOutOp
    swap_in: SwapInOp
    swap_discard: DiscardOp | None
    swap_copy: CopyOp | None = None  # optional range copy (hookspecs.swap_copy)


class SwapArea:
    """An activated swap area.  Created by :meth:`swapio.plugins.PluginHost.activate`."""

    def __init__(
        self,
        location: Location,
        ops: BoundOps,
        pool: PagePool,
        host: PluginHost | None = None,
        create: CreateRequest | None = None,
    ) -> None:
        self.location = location
        self.create = create
        self.pool = pool
        self.host = host
        self.owner = ops.plugin_name
        self._ops = ops
        self._info: SwapInfo | None = None
        self._slots: SlotMap | None = None
        self.state = AreaState.ACTIVATING
        self._inflight = 0
        # set up only while deactivate() waits for the in-flight count to reach zero: the
        # per-request path touches no event
        self._draining: asyncio.Event | None = None
        self._reserved = 0

    # --- activation -------------------------------------------------------------------

    async def _activate(self) -> None:
        info = await self._ops.swapfile(self, True)
        if not isinstance(info, SwapInfo):
            raise UsageError(
                f"plugin {self.owner!r}: swapfile(activate=True) for {self.location} returned "
                f"{type(info).__name__}, expected SwapInfo"
            )
        check_page_size(info.page_size)
        if info.pages <= 0:
            raise UsageError(f"plugin {self.owner!r} reported an area of {info.pages} pages")
        self._info = info
        need = info.capabilities.reserve_need
        if need:
            try:
                self.pool.adjust_reserve(need)
            except BaseException:
                self.state = AreaState.INACTIVE
                await self._ops.swapfile(self, False)  # give the store back untouched
                raise
            self._reserved = need
        self.state = AreaState.ACTIVE

    @property
    def info(self) -> SwapInfo:
        """The activation record (raises if the area never activated)."""
        if self._info is None:
            raise AreaInactiveError(f"area {self.location} is not active")
        return self._info

    @property
    def page_size(self) -> int:
        return self.info.page_size

    @property
    def pages(self) -> int:
        return self.info.pages

    @property
    def capabilities(self) -> Capabilities:
        return self.info.capabilities

    @property
    def private(self) -> Any:
        """The owner's per-area state (``SwapInfo.private``)."""
        return self.info.private

    @property
    def slots(self) -> SlotMap:
        """Slot allocator for callers that want the area to hand out slots (pager, CLI)."""
        if self._slots is None:
            self._slots = SlotMap(self.pages)
        return self._slots

    @property
    def inflight(self) -> int:
        """Number of requests currently inside the owner's operations."""
        return self._inflight

    @property
    def hooks(self) -> BoundOps:
        """The owner plugin's hooks serving this area (read-only).

        For a stacked area's plugin that calls them itself (:meth:`begin_request`, which
        also returns them).  Read them per request, not once at assembly: the area is the
        one place that says which implementations serve it.
        """
        return self._ops

    # --- stacked areas: another plugin calls this area's hooks itself ------------------

    def begin_request(self) -> BoundOps:
        """Count one request in flight on this area and return the hooks to serve it.

        For a **stacked** area's plugin (the mirror and its legs) that has validated the
        request once itself — slots in range, ``page_size`` buffers, not read-only for a
        write, discard offered for a discard, at most ``max_pages_per_request`` pages — and
        now calls this area's owner hooks directly, as :meth:`call_validated` would but
        without its coroutine frames.  Raises :class:`AreaInactiveError` (the text
        :meth:`call_validated` uses) unless the area is active; otherwise the request counts
        until the matching :meth:`end_request`, so :meth:`deactivate` waits for it.  Call
        the hook with no ``await`` between the two (the area could begin draining), and
        pair every successful call with exactly one :meth:`end_request`, in a ``finally``::

            hooks = area.begin_request()
            try:
                await hooks.swap_out(area, slot, pages)
            finally:
                area.end_request()
        """
        if self.state is not _ACTIVE:
            raise self._inactive()
        self._inflight += 1
        return self._ops

    def end_request(self) -> None:
        """A request counted by :meth:`begin_request` (or by the area itself) is done: the
        last one out lets a waiting :meth:`deactivate` go on."""
        self._inflight -= 1
        if self._inflight == 0 and self._draining is not None:
            self._draining.set()

    # --- I/O --------------------------------------------------------------------------

    def _inactive(self) -> AreaInactiveError:
        return AreaInactiveError(f"area {self.location} is {self.state.value}; no new I/O")

    def _begin(self, slot: int, count: int) -> SwapInfo:
        if self.state is not AreaState.ACTIVE:
            raise self._inactive()
        info = self._info
        assert info is not None
        if count <= 0:
            raise UsageError("a request needs at least one page")
        if slot < 0 or slot + count > info.pages:
            raise SlotRangeError(
                f"slots {slot}..{slot + count - 1} out of range for {self.location} "
                f"({info.pages} slots)"
            )
        return info

    def _enter(self) -> None:
        """Count a request whose state the caller has just checked (``_begin``)."""
        self._inflight += 1

    async def _split(
        self,
        op: Callable[[SwapArea, int, Sequence[Any]], Awaitable[None]],
        slot: int,
        pages: Sequence[Any],
        step: int,
    ) -> None:
        """Call the owner's ``op`` once per ``step`` pages, counting the request in flight."""
        self._enter()
        try:
            if len(pages) <= step:
                await op(self, slot, pages)
            else:
                for i in range(0, len(pages), step):
                    await op(self, slot + i, pages[i : i + step])
        finally:
            self.end_request()

    async def swap_out(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        """Write ``pages`` to consecutive slots from ``slot``.

        Requests longer than ``max_pages_per_request`` are split.  On return the data is
        visible to later ``swap_in`` calls, and durable if the area is ``durable``.
        """
        info = self._begin(slot, len(pages))
        if info.capabilities.read_only:
            raise ReadOnlyAreaError(f"area {self.location} is read-only; swap_out refused")
        size = info.page_size
        for page in pages:
            # the common buffer types without a new memoryview each (as the scheduler's
            # admission check): half the cost of a 64-page request's loop
            if isinstance(page, memoryview):
                if page.nbytes == size:
                    continue
            elif (type(page) is bytes or type(page) is bytearray) and len(page) == size:
                continue
            nbytes = memoryview(page).nbytes
            if nbytes != size:
                raise PageSizeError(
                    f"swap_out to {self.location}: buffer of {nbytes} bytes, expected {size}"
                )
        await self._split(self._ops.swap_out, slot, pages, info.capabilities.max_pages_per_request)

    async def swap_in(self, slot: int, pages: Sequence[memoryview]) -> None:
        """Fill each writable ``page_size`` view from consecutive slots starting at ``slot``."""
        info = self._begin(slot, len(pages))
        size = info.page_size
        for view in pages:
            if view.nbytes != size or view.readonly:
                raise PageSizeError(
                    f"swap_in from {self.location}: need writable buffers of {size} bytes, "
                    f"got {'read-only ' if view.readonly else ''}{view.nbytes} bytes"
                )
        await self._split(self._ops.swap_in, slot, pages, info.capabilities.max_pages_per_request)

    async def discard(self, slot: int, count: int = 1) -> None:
        """Tell the store the slots' contents are no longer needed."""
        info = self._begin(slot, count)
        if info.capabilities.read_only:
            raise ReadOnlyAreaError(f"area {self.location} is read-only; discard refused")
        if not info.capabilities.discard or self._ops.swap_discard is None:
            raise CapabilityError(f"area {self.location} does not support discard")
        self._enter()
        try:
            await self._ops.swap_discard(self, slot, count)
        finally:
            self.end_request()

    async def call_validated(self, op: str, slot: int, pages: Sequence[Any], count: int) -> None:
        """Run ``op`` (``"swap_out"``, ``"swap_in"`` or ``"discard"``) for a request whose
        slots, buffers, read-only-ness and discard capability the caller already checked
        against this area — the I/O scheduler validates each request once, at submission.
        Only the state is checked again: the area may have begun draining since."""
        if self.state is not AreaState.ACTIVE:
            raise self._inactive()
        ops = self._ops
        if op == "discard":
            if ops.swap_discard is None:
                raise CapabilityError(f"area {self.location} does not support discard")
            self._enter()
            try:
                await ops.swap_discard(self, slot, count)
            finally:
                self.end_request()
            return
        info = self._info
        assert info is not None  # active
        step = info.capabilities.max_pages_per_request
        await self._split(ops.swap_out if op == "swap_out" else ops.swap_in, slot, pages, step)

    async def copy(self, slot: int, dest: SwapArea, dest_slot: int, count: int) -> None:
        """Copy ``count`` slots from ``slot`` of this area to ``dest_slot`` of ``dest``.

        One ``swap_copy`` request when both areas belong to one plugin that implements it
        (see :func:`swapio.hookspecs.swap_copy`); otherwise ``swap_in`` + ``swap_out`` here,
        in pieces of at most ``max_pages_per_request`` pages, each through one buffer of this
        area's pool.  Both areas must be active and have the same page size; ``dest`` must
        not be read-only; a copy within one area must not overlap itself.
        """
        info = self._begin(slot, count)
        dest_info = dest._begin(dest_slot, count)
        if dest_info.capabilities.read_only:
            raise ReadOnlyAreaError(f"area {dest.location} is read-only; copy refused")
        size = info.page_size
        if dest_info.page_size != size:
            raise PageSizeError(
                f"copy from {self.location} ({size}-byte pages) to {dest.location} "
                f"({dest_info.page_size}-byte pages): page sizes differ"
            )
        if dest is self and slot < dest_slot + count and dest_slot < slot + count:
            raise UsageError(
                f"copy within {self.location}: slots {slot}..{slot + count - 1} overlap "
                f"{dest_slot}..{dest_slot + count - 1}"
            )
        op = self._ops.swap_copy
        if op is not None and dest._ops.plugin_name == self._ops.plugin_name:
            self._enter()
            dest._enter()
            try:
                await op(self, slot, dest, dest_slot, count)
            finally:
                dest.end_request()
                self.end_request()
            return
        step = min(
            info.capabilities.max_pages_per_request, dest_info.capabilities.max_pages_per_request
        )
        for done in range(0, count, step):
            n = min(step, count - done)
            with await self.pool.alloc(n * size) as buf:
                views = [buf.view[i * size : (i + 1) * size] for i in range(n)]
                await self.swap_in(slot + done, views)
                await dest.swap_out(dest_slot + done, views)

    async def read(self, slot: int, count: int = 1) -> bytearray:
        """Convenience: swap in ``count`` pages and return them as one bytearray."""
        size = self.page_size
        out = bytearray(size * count)
        view = memoryview(out)
        await self.swap_in(slot, [view[i * size : (i + 1) * size] for i in range(count)])
        return out

    async def write(self, slot: int, data: PageBuffer) -> None:
        """Convenience: swap out ``data`` (a whole number of pages) from ``slot``."""
        size = self.page_size
        view = memoryview(data).cast("B")
        if view.nbytes == 0 or view.nbytes % size:
            raise PageSizeError(
                f"write to {self.location}: {view.nbytes} bytes is not a whole number of "
                f"{size}-byte pages"
            )
        await self.swap_out(slot, [view[i : i + size] for i in range(0, view.nbytes, size)])

    # --- deactivation -----------------------------------------------------------------

    async def deactivate(self, timeout: float | None = None) -> None:
        """Refuse new I/O, drain in-flight requests, then release the store (``swapoff``).

        Raises :class:`SwapTimeoutError` if in-flight I/O does not drain within
        ``timeout`` seconds; the area then stays in the draining state and may be
        deactivated again.  Deactivating an inactive area is a no-op.
        """
        if self.state in (AreaState.INACTIVE, AreaState.ACTIVATING):
            return
        self.state = AreaState.DRAINING
        drained = self._draining = asyncio.Event()
        if self._inflight == 0:
            drained.set()
        try:
            await asyncio.wait_for(drained.wait(), timeout)
        except TimeoutError:
            raise SwapTimeoutError(
                f"area {self.location}: {self._inflight} request(s) still in flight after "
                f"{timeout} s; not deactivated"
            ) from None
        try:
            await self._ops.swapfile(self, False)
        finally:
            self.state = AreaState.INACTIVE
            if self._reserved:
                self.pool.adjust_reserve(-self._reserved)
                self._reserved = 0

    async def __aenter__(self) -> SwapArea:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deactivate()

    def __repr__(self) -> str:
        geometry = f"{self._info.pages}x{self._info.page_size}" if self._info else "?"
        return f"<SwapArea {self.location} owner={self.owner} {geometry} {self.state.value}>"
