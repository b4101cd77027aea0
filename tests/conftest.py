"""Fixtures shared across the suite: the real nfs-ganesha server on loopback.

The server (:class:`swapio_nfs.ganesha.GaneshaServer`) is session-scoped, runs on free
non-standard ports with a temporary export, and registers with ``rpcbind``.  If it cannot
start, every test that uses it **fails** with the server's log — it never skips.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from swapio_nfs.ganesha import GaneshaError, GaneshaServer


@pytest.fixture(scope="session")
def ganesha_server() -> Iterator[GaneshaServer]:
    """The session's nfs-ganesha; stopped at the end of the session."""
    root = Path(tempfile.mkdtemp(prefix="swapio-ganesha-"))
    root.chmod(0o755)
    try:
        server = GaneshaServer(root)
        server.start()
    except GaneshaError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"nfs-ganesha could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ganesha(ganesha_server: GaneshaServer) -> GaneshaServer:
    """The session's server, restarted first if an earlier fault test left it down."""
    try:
        ganesha_server.ensure_running()
    except GaneshaError as exc:
        pytest.fail(f"nfs-ganesha could not be restarted: {exc}", pytrace=False)
    return ganesha_server
