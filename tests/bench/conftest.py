"""Fixtures for the benchmark tests: the NFS suite's real nfs-ganesha server."""

from __future__ import annotations

from tests.nfs.conftest import ganesha, ganesha_server

__all__ = ["ganesha", "ganesha_server"]
