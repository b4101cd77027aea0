"""The conformance kit on a real redis-server and on a real 6-node Redis Cluster.

``inject_fault`` uses the servers' own refusal: the ACL of the default user loses ``MGET``
and ``MSET``, so every page command fails with ``NOPERM`` until ``clear_fault`` gives them back.
"""

from __future__ import annotations

import pytest
from swapio_redis.local import LocalCluster, LocalRedis

from swapio.area import SwapArea
from swapio.testing import BackendTests


def _break(nodes: list[LocalRedis]) -> None:
    for node in nodes:
        node.cli("ACL", "SETUSER", "default", "-mget", "-mset")


def _heal(nodes: list[LocalRedis]) -> None:
    for node in nodes:
        node.cli("ACL", "SETUSER", "default", "+@all")


class TestStandalone(BackendTests):
    @pytest.fixture
    def area_url(self, standalone_url: str) -> str:
        return standalone_url

    @pytest.fixture(autouse=True)
    def _server(self, redis_server: LocalRedis) -> None:
        self.nodes = [redis_server]

    async def inject_fault(self, area: SwapArea) -> None:
        _break(self.nodes)

    async def clear_fault(self, area: SwapArea) -> None:
        _heal(self.nodes)


class TestCluster(BackendTests):
    @pytest.fixture
    def area_url(self, cluster_url: str) -> str:
        return cluster_url

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: LocalCluster) -> None:
        self.nodes = redis_cluster.masters()

    async def inject_fault(self, area: SwapArea) -> None:
        _break(self.nodes)

    async def clear_fault(self, area: SwapArea) -> None:
        _heal(self.nodes)
