"""The abstract conformance test class (fsspec ``AbstractFixtures`` / zarr ``StoreTests`` style).

Every check runs once per page size in :attr:`BackendTests.page_sizes` (4096 and 16384 by
default), reads into buffers pre-filled with garbage (so a slot the backend does not fill is
seen), and runs under a :class:`~swapio.testing.stall.StallWatch` that fails the check if a
hook blocks the event loop for :attr:`BackendTests.max_loop_stall` seconds or more.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import pytest

from swapio.area import CreateRequest, SwapArea
from swapio.errors import (
    AreaExistsError,
    AreaInactiveError,
    AreaNotFoundError,
    BackendIOError,
    PageSizeError,
    SlotRangeError,
    UsageError,
)
from swapio.plugins import PluginHost
from swapio.testing.pages import expect_pages
from swapio.testing.stall import StallWatch

#: Every reason the kit gives for a check it did not run starts with this (the pytest plugin
#: prints them in a summary section, so a skipped check is never silent).
SKIP_PREFIX = "swapio kit: "

#: What a caller's buffer holds before a read: a backend that leaves a page unfilled is seen.
GARBAGE = 0xA5

F = TypeVar("F", bound=Callable[..., Awaitable[None]])


class KitWarning(UserWarning):
    """A conformance-kit subclass uses a knob the kit no longer reads."""


_warned: set[type] = set()


def page_pattern(slot: int, generation: int, page_size: int) -> bytes:
    """Deterministic, slot- and generation-specific page content (never all zeros)."""
    seed = hashlib.blake2b(f"{slot}:{generation}".encode(), digest_size=32).digest()
    return (seed * (page_size // len(seed) + 1))[:page_size]


def _kit_check(test: F) -> F:
    """Mark a kit check asyncio and run it under the event-loop stall watch."""

    @functools.wraps(test)
    async def checked(self: BackendTests, *args: Any, **kwargs: Any) -> None:
        host = kwargs.get("host")
        limit = self.max_loop_stall
        if limit is None or not isinstance(host, PluginHost):
            await test(self, *args, **kwargs)
            return
        watch = StallWatch(limit)
        bind = host.bind
        host.bind = lambda scheme: watch.wrap_ops(bind(scheme))  # type: ignore[method-assign]
        try:
            async with watch.running():
                try:
                    await test(self, *args, **kwargs)
                except BaseException as exc:
                    if watch.stalls:
                        exc.add_note(watch.report(f"{type(self).__name__}.max_loop_stall"))
                    raise
        finally:
            del host.bind
        message = watch.report(f"{type(self).__name__}.max_loop_stall")
        if message:
            pytest.fail(message, pytrace=False)

    return pytest.mark.asyncio(checked)  # type: ignore[no-any-return]


class BackendTests:
    """Checks every swapio backend must pass.  Override the fixtures and class knobs.

    Knobs (class attributes): :attr:`pages`, :attr:`page_sizes`,
    :attr:`unsupported_page_sizes`, :attr:`persists_across_reactivation`,
    :attr:`op_timeout`, :attr:`max_loop_stall`; hooks: the ``area_url`` and ``host``
    fixtures, :meth:`inject_fault` and :meth:`clear_fault`.  See docs/plugin-authors.md.
    """

    #: Slots of the area each check creates.
    pages: int = 64
    #: Every check runs once at each of these page sizes (a backend that ignores the page
    #: size it is asked for fails at one of them).
    page_sizes: tuple[int, ...] = (4096, 16384)
    #: Page sizes of :attr:`page_sizes` your backend cannot serve, each with the reason; the
    #: checks at that size are skipped with the reason printed.
    unsupported_page_sizes: ClassVar[Mapping[int, str]] = MappingProxyType({})
    #: Whether data survives deactivate + reactivate of the same URL in one process.
    persists_across_reactivation: bool = True
    #: Seconds any single operation of the kit may take before the check fails.
    op_timeout: float = 30.0
    #: A hook that holds the event loop this many seconds or more (without yielding, or in
    #: its callbacks while in flight) fails the check; ``None`` turns the watch off.  0.1 s
    #: is asyncio's own ``slow_callback_duration``.
    max_loop_stall: float | None = 0.1
    #: The page size of the running check (set from :attr:`page_sizes`; not a knob).
    page_size: int = 4096

    # --- fixtures and hooks for subclasses --------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run every check of the class at each of :attr:`page_sizes`."""
        cls = type(self)
        legacy = any("page_size" in vars(c) for c in cls.__mro__ if c is not BackendTests)
        if legacy and cls not in _warned:
            _warned.add(cls)
            warnings.warn(
                KitWarning(
                    f"{cls.__name__} sets page_size, which the kit no longer reads: "
                    "every check runs at each of page_sizes (set page_sizes, or name a size "
                    "you cannot serve in unsupported_page_sizes)"
                ),
                stacklevel=1,
            )
        if "page_size" in metafunc.fixturenames:
            metafunc.parametrize(
                "page_size",
                self.page_sizes,
                indirect=True,
                ids=[f"page{s}" for s in self.page_sizes],
            )

    @pytest.fixture(name="page_size", autouse=True)
    def _page_size(self, request: pytest.FixtureRequest) -> int:
        """The page size of this check; request it in ``area_url`` if your URL must name it."""
        size: int = getattr(request, "param", self.page_sizes[0])
        reason = self.unsupported_page_sizes.get(size)
        if reason is not None:
            pytest.skip(
                f"{SKIP_PREFIX}{type(self).__name__} does not serve {size}-byte pages: {reason}"
            )
        self.page_size = size
        return size

    @pytest.fixture
    def area_url(self) -> str:
        """A URL where a new area may be created; each check gets a fresh one."""
        raise NotImplementedError("subclasses of BackendTests must provide an area_url fixture")

    @pytest.fixture
    def host(self) -> PluginHost:
        """The plugin host; override to register a plugin by hand."""
        return PluginHost()

    async def inject_fault(self, area: SwapArea) -> None:
        """Optional: make the store of ``area`` fail until :meth:`clear_fault` is called.

        From the moment this returns until ``clear_fault(area)`` returns, **every**
        ``swap_out`` and ``swap_in`` on ``area`` must raise :class:`BackendIOError` (or a
        subclass) — a persistent fault, not a one-shot one.  Without an override the check
        that backend errors reach the caller is skipped, and the pytest plugin prints why.
        """
        raise NotImplementedError

    async def clear_fault(self, area: SwapArea) -> None:
        """Undo :meth:`inject_fault` so the area can be deactivated cleanly.

        Override it whenever you override :meth:`inject_fault` (the kit refuses one without
        the other).  I/O after it need not succeed (a mirror that lost every leg may stay
        failed); deactivation must.
        """

    # --- helpers ----------------------------------------------------------------------

    @asynccontextmanager
    async def created(self, host: PluginHost, url: str) -> AsyncIterator[SwapArea]:
        area = await asyncio.wait_for(
            host.activate(url, create=CreateRequest(self.pages, self.page_size)), self.op_timeout
        )
        try:
            yield area
        finally:
            await asyncio.wait_for(area.deactivate(), self.op_timeout)

    def pattern(self, slot: int, generation: int = 0) -> bytes:
        return page_pattern(slot, generation, self.page_size)

    async def read_pages(self, area: SwapArea, slot: int, count: int = 1) -> list[bytes]:
        """Swap in ``count`` pages into buffers full of garbage; return each page's bytes."""
        size = self.page_size
        buffer = bytearray([GARBAGE]) * (size * count)
        view = memoryview(buffer)
        views = [view[i * size : (i + 1) * size] for i in range(count)]
        await asyncio.wait_for(area.swap_in(slot, views), self.op_timeout)
        return [bytes(v) for v in views]

    async def read_one(self, area: SwapArea, slot: int) -> bytes:
        return (await self.read_pages(area, slot))[0]

    def zeros(self) -> bytes:
        return bytes(self.page_size)

    # --- activation -------------------------------------------------------------------

    @_kit_check
    async def test_create_reports_requested_geometry(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            assert (area.pages, area.page_size) == (self.pages, self.page_size)
            assert area.capabilities.max_pages_per_request >= 1

    @_kit_check
    async def test_open_missing_area_raises_not_found(
        self, host: PluginHost, area_url: str
    ) -> None:
        with pytest.raises(AreaNotFoundError):
            await asyncio.wait_for(host.activate(area_url), self.op_timeout)

    @_kit_check
    async def test_create_over_existing_refuses_and_keeps_data(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            await area.write(1, self.pattern(1))
            with pytest.raises(AreaExistsError):
                await host.activate(area_url, create=CreateRequest(self.pages, self.page_size))
            expect_pages(await self.read_one(area, 1), self.pattern(1))

    # --- data path --------------------------------------------------------------------

    @_kit_check
    async def test_round_trip_single_pages(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            slots = [0, 1, self.pages // 2, self.pages - 1]
            for slot in slots:
                await area.write(slot, self.pattern(slot))
            for slot in slots:
                expect_pages(await self.read_one(area, slot), self.pattern(slot), f"slot {slot}")

    @_kit_check
    async def test_overwrite_returns_newest_content(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            for generation in range(3):
                await area.write(5, self.pattern(5, generation))
            expect_pages(await self.read_one(area, 5), self.pattern(5, 2))

    @_kit_check
    async def test_never_written_slots_read_zeros_into_dirty_buffers(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            await area.write(3, self.pattern(3))
            await area.write(6, self.pattern(6))
            got = await self.read_pages(area, 2, 6)  # slots 2..7 into garbage-filled buffers
            zero = self.zeros()
            expected = [zero, self.pattern(3), zero, zero, self.pattern(6), zero]
            for slot, (page, want) in enumerate(zip(got, expected, strict=True), start=2):
                expect_pages(page, want, f"slot {slot} did not read as written (zeros if never)")
            expect_pages(await self.read_one(area, self.pages - 1), zero)

    @_kit_check
    async def test_merged_multi_page_requests(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            count = min(self.pages, 2 * area.capabilities.max_pages_per_request + 3)
            data = [self.pattern(s, 1) for s in range(count)]
            await asyncio.wait_for(area.write(0, b"".join(data)), self.op_timeout)
            expect_pages(await self.read_pages(area, 0, count), data)
            # read back in other groupings than the write used
            half = count // 2
            expect_pages(await self.read_pages(area, half, count - half), data[half:])
            expect_pages(await self.read_one(area, count - 1), data[count - 1])

    @_kit_check
    async def test_concurrent_mixed_io(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            first = self.pages // 2
            for slot in range(first, self.pages):
                await area.write(slot, self.pattern(slot))

            async def writer(slot: int) -> None:
                await area.write(slot, self.pattern(slot, 7))

            async def reader(slot: int) -> bytes:
                return await self.read_one(area, slot)

            jobs = [writer(s) for s in range(first)]
            reads = [reader(s) for s in range(first, self.pages)]
            results = await asyncio.wait_for(asyncio.gather(*jobs, *reads), self.op_timeout)
            read_back = [r for r in results[first:] if r is not None]
            expect_pages(read_back, [self.pattern(s) for s in range(first, self.pages)])
            for slot in range(first):
                expect_pages(await self.read_one(area, slot), self.pattern(slot, 7))

    # --- bad requests -----------------------------------------------------------------

    @_kit_check
    async def test_out_of_range_slot_raises_and_writes_nothing(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            last = self.pages - 1
            await area.write(last, self.pattern(last))
            with pytest.raises(SlotRangeError):
                await area.write(self.pages, self.pattern(0))
            with pytest.raises(SlotRangeError):
                await area.write(last, self.pattern(0) * 2)  # runs past the end
            with pytest.raises(SlotRangeError):
                await area.read(-1)
            expect_pages(await self.read_one(area, last), self.pattern(last))

    @_kit_check
    async def test_wrong_buffer_size_raises_and_writes_nothing(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            await area.write(2, self.pattern(2))
            with pytest.raises(PageSizeError):
                await area.swap_out(2, [self.pattern(9)[:-1]])
            with pytest.raises(PageSizeError):
                await area.swap_in(2, [memoryview(bytearray(self.page_size + 1))])
            with pytest.raises(PageSizeError):
                await area.swap_in(2, [memoryview(bytes(self.page_size))])  # read-only
            with pytest.raises(UsageError):
                await area.swap_out(2, [])
            expect_pages(await self.read_one(area, 2), self.pattern(2))

    # --- discard ----------------------------------------------------------------------

    @_kit_check
    async def test_discard_reads_zeros_and_spares_neighbours(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            if not area.capabilities.discard:
                pytest.skip(f"{SKIP_PREFIX}the area does not declare Capabilities.discard")
            for slot in range(4, 8):
                await area.write(slot, self.pattern(slot))
            await asyncio.wait_for(area.discard(5, 2), self.op_timeout)
            got = await self.read_pages(area, 4, 4)
            expect_pages(got, [self.pattern(4), self.zeros(), self.zeros(), self.pattern(7)])

    # --- lifecycle --------------------------------------------------------------------

    @_kit_check
    async def test_deactivate_drains_in_flight_io(self, host: PluginHost, area_url: str) -> None:
        area = await host.activate(area_url, create=CreateRequest(self.pages, self.page_size))
        writes = [
            asyncio.ensure_future(area.write(s, self.pattern(s, 3))) for s in range(self.pages)
        ]
        await asyncio.sleep(0)  # let the writes start
        await asyncio.wait_for(area.deactivate(), self.op_timeout)
        assert all(w.done() for w in writes), "deactivate returned with writes in flight"
        for w in writes:
            assert w.exception() is None or isinstance(w.exception(), AreaInactiveError)
        with pytest.raises(AreaInactiveError):
            await area.write(0, self.pattern(0))
        if self.persists_across_reactivation:
            again = await self._reopen(host, area_url)
            try:
                for slot, w in enumerate(writes):
                    if w.exception() is None:
                        expect_pages(await self.read_one(again, slot), self.pattern(slot, 3))
            finally:
                await again.deactivate()

    @_kit_check
    async def test_data_survives_deactivate_and_reactivate(
        self, host: PluginHost, area_url: str
    ) -> None:
        if not self.persists_across_reactivation:
            pytest.skip(f"{SKIP_PREFIX}persists_across_reactivation is False")
        written = (0, 9, self.pages // 2)  # not the last slot: the count must not come from data
        async with self.created(host, area_url) as area:
            for slot in written:
                await area.write(slot, self.pattern(slot, 4))
            durable = area.capabilities.durable
        again = await self._reopen(host, area_url)
        try:
            assert again.capabilities.durable == durable
            for slot in written:
                expect_pages(await self.read_one(again, slot), self.pattern(slot, 4))
            expect_pages(await self.read_one(again, 1), self.zeros())
            expect_pages(await self.read_one(again, self.pages - 1), self.zeros())
        finally:
            await again.deactivate()

    async def _reopen(self, host: PluginHost, url: str) -> SwapArea:
        """Activate ``url`` again (no create) and check it reports the created geometry."""
        again = await asyncio.wait_for(host.activate(url), self.op_timeout)
        geometry = (again.pages, again.page_size)
        if geometry != (self.pages, self.page_size):
            await again.deactivate()
            hint = ""
            if again.page_size != self.page_size:
                hint = (
                    "; a store that does not record its page size must take it from the URL:"
                    " request the page_size fixture in area_url and put ?page_size= in it"
                )
            pytest.fail(
                f"reopened {url} reports {geometry[0]} pages of {geometry[1]} bytes, created "
                f"with {self.pages} of {self.page_size}{hint}",
                pytrace=False,
            )
        return again

    @_kit_check
    async def test_backend_errors_propagate(self, host: PluginHost, area_url: str) -> None:
        cls = type(self)
        if cls.inject_fault is BackendTests.inject_fault:
            pytest.skip(
                f"{SKIP_PREFIX}{cls.__name__} does not implement inject_fault, so the check "
                "that store failures reach the caller as BackendIOError did not run "
                "(override inject_fault and clear_fault: docs/plugin-authors.md)"
            )
        if cls.clear_fault is BackendTests.clear_fault:
            pytest.fail(
                f"{cls.__name__} implements inject_fault but not clear_fault; the kit needs "
                "both (the fault lasts until clear_fault)",
                pytrace=False,
            )
        async with self.created(host, area_url) as area:
            await area.write(0, self.pattern(0))
            await self.inject_fault(area)
            try:
                with pytest.raises(BackendIOError):
                    await asyncio.wait_for(area.write(1, self.pattern(1)), self.op_timeout)
                with pytest.raises(BackendIOError):  # the fault persists until clear_fault
                    await asyncio.wait_for(area.read(0), self.op_timeout)
            finally:
                await self.clear_fault(area)
            assert area.inflight == 0
