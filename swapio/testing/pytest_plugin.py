"""pytest plugin (entry point ``pytest11: swapio``): fixtures for backend authors."""

from __future__ import annotations

import pytest

from swapio.plugins import PluginHost


@pytest.fixture
def swapio_host() -> PluginHost:
    """A :class:`~swapio.plugins.PluginHost` with every installed plugin loaded."""
    return PluginHost()
