"""Run swapio's conformance kit against the zmem backend (copy this into your own plugin).

Every check runs at 4096- and 16384-byte pages (``page_sizes``); zmem records the page size
of each area, so ``area_url`` need not name it.
"""

from __future__ import annotations

import itertools

import pytest

from swapio.area import SwapArea
from swapio.errors import BackendIOError
from swapio.testing import BackendTests

_names = itertools.count()


def _unavailable(*args: object) -> None:
    raise BackendIOError("injected fault: the zmem store is unavailable")


class TestZmem(BackendTests):
    @pytest.fixture
    def area_url(self) -> str:
        return f"zmem://kit-{next(_names)}"

    async def inject_fault(self, area: SwapArea) -> None:
        """Until clear_fault, every read and write of the area's store fails."""
        vars(area.private).update(put=_unavailable, get=_unavailable)

    async def clear_fault(self, area: SwapArea) -> None:
        for name in ("put", "get"):
            del vars(area.private)[name]
