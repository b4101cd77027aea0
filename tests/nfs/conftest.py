"""Fixtures for the NFS backend: a real nfs-ganesha (VFS FSAL, NFSv3, TCP) on loopback.

The server (:class:`swapio_nfs.ganesha.GaneshaServer`) is session-scoped, runs on free
non-standard ports with a temporary export, and registers with ``rpcbind``.  If it cannot
start, every test that uses it **fails** with the server's log — it never skips.  Fault tests
restart, kill, pause and resume it; ``ganesha`` brings it back before each test.  Both
fixtures live in ``tests/conftest.py``: the mirror and bench tests use the same server.
"""

from __future__ import annotations

import os

import pytest
from swapio_nfs.ganesha import GaneshaServer

__all__ = ["GaneshaServer"]


_counter = iter(range(1_000_000))


@pytest.fixture
def nfs_name() -> str:
    """A file name not used by any other test in this session."""
    return f"swap-{os.getpid()}-{next(_counter)}"
