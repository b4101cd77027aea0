"""What a workload runs against: a :class:`Target` moves pages between buffers and slots.

Workloads only see this interface, so a backend and a peer run the very same loop.  Backend
targets (:class:`AreaTarget`) wrap an activated :class:`~swapio.area.SwapArea`; peers are
:class:`Target` subclasses a plugin provides through the ``swapio_bench`` hook (e.g. raw
``os.pwritev`` on a local file beside the file backend).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swapio.area import PageBuffer, SwapArea
from swapio.bench.results import Kind
from swapio.pool import PagePool


@dataclass
class Target:
    """Base class: a named store of ``pages`` slots of ``page_size`` bytes."""

    name: str
    kind: Kind
    page_size: int
    pages: int
    #: Slots [0, written) hold data written by an earlier workload (seq-in reads them).
    written: int = 0
    #: Activates the backend's area again on a given pool (the pressure workload), or None.
    reopen: Callable[[PagePool], Awaitable[SwapArea]] | None = None
    #: Pool pages the backend's area needs under memory pressure (its declared reserve need).
    reserve_need: int = 0
    #: A second area beside this one for the mapping workloads (``BenchTarget.mapped``).
    mapped: Callable[[str], tuple[str, Path | None]] | None = None

    @property
    def area(self) -> SwapArea | None:
        """The swap area behind a backend target (pager workloads need one)."""
        return None

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        raise NotImplementedError

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the target's resources."""


@dataclass
class AreaTarget(Target):
    """A swapio backend: every call goes through the area's bound operations."""

    swap_area: SwapArea | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> SwapArea | None:
        return self.swap_area

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        assert self.swap_area is not None
        await self.swap_area.swap_out(slot, pages)

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        assert self.swap_area is not None
        await self.swap_area.swap_in(slot, views)

    async def close(self) -> None:
        """Deactivate the area (once; the pressure workload re-activates it on its own pool)."""
        area, self.swap_area = self.swap_area, None
        if area is not None:
            await area.deactivate()
