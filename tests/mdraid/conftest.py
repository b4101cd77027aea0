"""Fixtures for the md bitmap / mirror tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapio.plugins import PluginHost
from tests.mdraid.helpers import MirrorFiles


@pytest.fixture
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture
def files(tmp_path: Path) -> MirrorFiles:
    return MirrorFiles(tmp_path, tmp_path / "bitmap", [tmp_path / "leg0", tmp_path / "leg1"])
