"""The NFS backend passes swapio's conformance kit against a real nfs-ganesha."""

from __future__ import annotations

import pytest

from swapio.area import SwapArea
from swapio.testing import BackendTests

from .conftest import GaneshaServer


class TestNfsConformance(BackendTests):
    pages = 64
    op_timeout = 60.0

    @pytest.fixture
    def area_url(self, ganesha: GaneshaServer, nfs_name: str, page_size: int) -> str:
        self._server = ganesha
        # an NFS swap file records its size, not its page size: the URL does
        return ganesha.url(nfs_name, timeo=0.5, retrans=1, page_size=page_size)

    async def inject_fault(self, area: SwapArea) -> None:
        """Stop the server answering: calls time out (a BackendIOError-derived timeout)."""
        self._server.pause()

    async def clear_fault(self, area: SwapArea) -> None:
        self._server.resume()
