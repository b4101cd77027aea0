"""The mirror passes swapio's conformance kit (legs and bitmap on file areas)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from swapio_mdraid._mirror import Mirror

from swapio.area import BoundOps, SwapArea
from swapio.errors import BackendIOError
from swapio.testing import BackendTests
from tests.mdraid.helpers import mirror_url


class TestMirrorConformance(BackendTests):
    @pytest.fixture
    def area_url(self, tmp_path: Path, page_size: int) -> str:
        legs = [str(tmp_path / "leg0"), str(tmp_path / "leg1")]
        # plain-path legs are headerless files: the mirror URL records their page size
        return f"{mirror_url(str(tmp_path / 'bitmap'), legs, chunk=16384)}&page_size={page_size}"

    async def inject_fault(self, area: SwapArea) -> None:
        """Every leg's store fails from now on (as a pulled disk would)."""
        mirror: Mirror = area.private
        self._saved: list[BoundOps] = [leg.area._ops for leg in mirror.legs]

        async def broken(*args: object) -> None:
            raise BackendIOError("injected fault: the leg's store is gone")

        for leg in mirror.legs:
            leg.area._ops = dataclasses.replace(leg.area._ops, swap_out=broken, swap_in=broken)

    async def clear_fault(self, area: SwapArea) -> None:
        mirror: Mirror = area.private
        for leg, ops in zip(mirror.legs, self._saved, strict=True):
            leg.area._ops = ops
