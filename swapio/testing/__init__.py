"""swapio's conformance kit for backend authors.

Subclass :class:`BackendTests` in your own test suite and provide the ``area_url`` fixture::

    from swapio.testing import BackendTests

    class TestMyBackend(BackendTests):
        @pytest.fixture
        def area_url(self, tmp_path):
            return f"mybackend://{tmp_path}/swap"

Every check runs at each of ``page_sizes`` (4096 and 16384 bytes by default), reads into
garbage-filled buffers, and fails if a hook blocks the event loop for ``max_loop_stall``
seconds (0.1) or more.  Every test is ``@pytest.mark.asyncio`` and every fixture is
synchronous, so the kit runs under pytest-asyncio's strict mode as well as auto mode; install
it with ``pip install 'swapio[testing]'``.  See docs/plugin-authors.md.
"""

from __future__ import annotations

import pytest

# Rewrite the kit's asserts so failures in a plugin author's suite show the values compared.
pytest.register_assert_rewrite("swapio.testing.conformance")

from swapio.testing.conformance import BackendTests, KitWarning, page_pattern  # noqa: E402

__all__ = ["BackendTests", "KitWarning", "page_pattern"]
