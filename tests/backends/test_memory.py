from __future__ import annotations

import itertools

import pytest

from swapio.testing import BackendTests

_names = itertools.count()


class TestMemoryConformance(BackendTests):
    @pytest.fixture
    def area_url(self) -> str:
        return f"memory://conformance-{next(_names)}"
