"""The abstract conformance test class (fsspec ``AbstractFixtures`` / zarr ``StoreTests`` style)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


def page_pattern(slot: int, generation: int, page_size: int) -> bytes:
    """Deterministic, slot- and generation-specific page content (never all zeros)."""
    seed = hashlib.blake2b(f"{slot}:{generation}".encode(), digest_size=32).digest()
    return (seed * (page_size // len(seed) + 1))[:page_size]


class BackendTests:
    """Checks every swapio backend must pass.  Override the fixtures and class knobs."""

    #: Geometry of the area each test creates.
    pages: int = 64
    page_size: int = 4096
    #: Whether data survives deactivate + reactivate of the same URL in one process.
    persists_across_reactivation: bool = True
    #: Seconds any single operation of the kit may take before the test fails.
    op_timeout: float = 30.0

    @pytest.fixture
    def area_url(self) -> str:
        """A URL where a new area may be created; each test gets a fresh one."""
        raise NotImplementedError("subclasses of BackendTests must provide an area_url fixture")

    @pytest.fixture
    def host(self) -> PluginHost:
        """The plugin host; override to register a plugin by hand."""
        return PluginHost()

    async def inject_fault(self, area: SwapArea) -> None:
        """Make the next I/O on ``area`` fail with BackendIOError; override if you can."""
        pytest.skip(f"{type(self).__name__} does not implement inject_fault")

    async def clear_fault(self, area: SwapArea) -> None:
        """Undo :meth:`inject_fault` so the area can be deactivated cleanly."""

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

    async def read_one(self, area: SwapArea, slot: int) -> bytes:
        return bytes(await asyncio.wait_for(area.read(slot), self.op_timeout))

    # --- activation -------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_create_reports_requested_geometry(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            assert area.pages == self.pages
            assert area.page_size == self.page_size
            assert area.capabilities.max_pages_per_request >= 1

    @pytest.mark.asyncio
    async def test_open_missing_area_raises_not_found(
        self, host: PluginHost, area_url: str
    ) -> None:
        with pytest.raises(AreaNotFoundError):
            await asyncio.wait_for(host.activate(area_url), self.op_timeout)

    @pytest.mark.asyncio
    async def test_create_over_existing_refuses_and_keeps_data(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            await area.write(1, self.pattern(1))
            with pytest.raises(AreaExistsError):
                await host.activate(area_url, create=CreateRequest(self.pages, self.page_size))
            assert await self.read_one(area, 1) == self.pattern(1)

    # --- data path --------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_round_trip_single_pages(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            slots = [0, 1, self.pages // 2, self.pages - 1]
            for slot in slots:
                await area.write(slot, self.pattern(slot))
            for slot in slots:
                assert await self.read_one(area, slot) == self.pattern(slot)

    @pytest.mark.asyncio
    async def test_overwrite_returns_newest_content(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            for generation in range(3):
                await area.write(5, self.pattern(5, generation))
            assert await self.read_one(area, 5) == self.pattern(5, 2)

    @pytest.mark.asyncio
    async def test_never_written_slot_reads_zeros(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            await area.write(3, self.pattern(3))
            assert await self.read_one(area, 4) == bytes(self.page_size)

    @pytest.mark.asyncio
    async def test_merged_multi_page_requests(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            count = min(self.pages, 2 * area.capabilities.max_pages_per_request + 3)
            data = b"".join(self.pattern(s, 1) for s in range(count))
            await asyncio.wait_for(area.write(0, data), self.op_timeout)
            assert bytes(await area.read(0, count)) == data
            # read back in other groupings than the write used
            half = count // 2
            assert bytes(await area.read(half, count - half)) == data[half * self.page_size :]
            assert await self.read_one(area, count - 1) == self.pattern(count - 1, 1)

    @pytest.mark.asyncio
    async def test_concurrent_mixed_io(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            first = self.pages // 2
            for slot in range(first, self.pages):
                await area.write(slot, self.pattern(slot))

            async def writer(slot: int) -> None:
                await area.write(slot, self.pattern(slot, 7))

            async def reader(slot: int) -> bytes:
                return bytes(await area.read(slot))

            jobs = [writer(s) for s in range(first)]
            reads = [reader(s) for s in range(first, self.pages)]
            results = await asyncio.wait_for(asyncio.gather(*jobs, *reads), self.op_timeout)
            assert results[first:] == [self.pattern(s) for s in range(first, self.pages)]
            for slot in range(first):
                assert await self.read_one(area, slot) == self.pattern(slot, 7)

    # --- bad requests -----------------------------------------------------------------

    @pytest.mark.asyncio
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
            assert await self.read_one(area, last) == self.pattern(last)

    @pytest.mark.asyncio
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
            assert await self.read_one(area, 2) == self.pattern(2)

    # --- discard ----------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_discard_reads_zeros_and_spares_neighbours(
        self, host: PluginHost, area_url: str
    ) -> None:
        async with self.created(host, area_url) as area:
            if not area.capabilities.discard:
                pytest.skip("area does not declare discard")
            for slot in range(4, 8):
                await area.write(slot, self.pattern(slot))
            await area.discard(5, 2)
            assert await self.read_one(area, 5) == bytes(self.page_size)
            assert await self.read_one(area, 6) == bytes(self.page_size)
            assert await self.read_one(area, 4) == self.pattern(4)
            assert await self.read_one(area, 7) == self.pattern(7)

    # --- lifecycle --------------------------------------------------------------------

    @pytest.mark.asyncio
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
            again = await host.activate(area_url)
            try:
                for slot, w in enumerate(writes):
                    if w.exception() is None:
                        assert await self.read_one(again, slot) == self.pattern(slot, 3)
            finally:
                await again.deactivate()

    @pytest.mark.asyncio
    async def test_data_survives_deactivate_and_reactivate(
        self, host: PluginHost, area_url: str
    ) -> None:
        if not self.persists_across_reactivation:
            pytest.skip("backend does not keep data across reactivation")
        async with self.created(host, area_url) as area:
            for slot in (0, 9, self.pages - 1):
                await area.write(slot, self.pattern(slot, 4))
            durable = area.capabilities.durable
        again = await host.activate(area_url)
        try:
            assert again.pages == self.pages
            assert again.page_size == self.page_size
            assert again.capabilities.durable == durable
            for slot in (0, 9, self.pages - 1):
                assert await self.read_one(again, slot) == self.pattern(slot, 4)
        finally:
            await again.deactivate()

    @pytest.mark.asyncio
    async def test_backend_errors_propagate(self, host: PluginHost, area_url: str) -> None:
        async with self.created(host, area_url) as area:
            await area.write(0, self.pattern(0))
            await self.inject_fault(area)
            try:
                with pytest.raises(BackendIOError):
                    await asyncio.wait_for(area.write(1, self.pattern(1)), self.op_timeout)
                with pytest.raises(BackendIOError):
                    await asyncio.wait_for(area.read(0), self.op_timeout)
            finally:
                await self.clear_fault(area)
            assert area.inflight == 0
