"""The NFS backend passes swapio's conformance kit against a real nfs-ganesha."""

from __future__ import annotations

import pytest

from swapio.area import SwapArea
from swapio.testing import BackendTests

from .conftest import GaneshaServer


class TestNfsConformance(BackendTests):
    pages = 64
    page_size = 4096
    op_timeout = 60.0

    @pytest.fixture
    def area_url(self, ganesha: GaneshaServer, nfs_name: str) -> str:
        self._server = ganesha
        return ganesha.url(nfs_name, timeo=0.5, retrans=1)

    async def inject_fault(self, area: SwapArea) -> None:
        """Stop the server answering: calls time out (a BackendIOError-derived timeout)."""
        self._server.pause()

    async def clear_fault(self, area: SwapArea) -> None:
        self._server.resume()
