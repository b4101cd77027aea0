from __future__ import annotations

import itertools

import pytest

from swapio.area import CreateRequest
from swapio.errors import MemoryPressureError
from swapio.plugins import PluginHost
from swapio.testing import BackendTests

_names = itertools.count()


class TestMemoryConformance(BackendTests):
    @pytest.fixture
    def area_url(self) -> str:
        return f"memory://conformance-{next(_names)}"


async def test_an_area_larger_than_ram_is_refused_before_allocating() -> None:
    """`swapio create memory://big --pages 1000000000000000` was a 48-line MemoryError."""
    with pytest.raises(MemoryPressureError, match="more than this machine's"):
        await PluginHost().activate("memory://too-big", create=CreateRequest(10**15))
