"""Run swapio's conformance kit against the zmem backend (copy this into your own plugin)."""

from __future__ import annotations

import itertools

import pytest

from swapio.testing import BackendTests

_names = itertools.count()


class TestZmem(BackendTests):
    @pytest.fixture
    def area_url(self) -> str:
        return f"zmem://kit-{next(_names)}"
