"""Fixtures for the md bitmap / mirror tests."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
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


TOKEN = "review-token-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real ``swapio serve`` on a free port, with its URL."""
    proc = subprocess.Popen(
        ["swapio", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SWAPIO_TOKEN": TOKEN},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), (line, proc.stderr and proc.stderr.read())
        yield proc, line.split()[-1]
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)
