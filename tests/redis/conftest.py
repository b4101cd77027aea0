"""Real redis-server processes on loopback for the redis backend tests.

A standalone server and a 6-node Redis Cluster (3 masters, 3 replicas, made by
``redis-cli --cluster create``) are started once per session in temporary directories,
both with a password, and torn down at the end.  If either cannot start, the tests using it
**fail** with the server's log; they never skip.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
from swapio_redis._options import ENV_PASSWORD, ENV_PASSWORD_FILE
from swapio_redis.local import LocalCluster, LocalRedis, LocalRedisError, free_ports, scratch_dir

PASSWORD = "redis-test-secret-0123456789"


@pytest.fixture(autouse=True)
def redis_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test talks to the servers with the right password unless it changes it."""
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    monkeypatch.delenv(ENV_PASSWORD_FILE, raising=False)
    return PASSWORD


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    root = scratch_dir("swapio-redis-")
    server = LocalRedis(root, free_ports(1)[0], password=PASSWORD)
    try:
        server.start()
    except (LocalRedisError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"redis-server could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_session() -> Iterator[LocalCluster]:
    root = scratch_dir("swapio-redis-cluster-")
    try:
        cluster = LocalCluster(root, masters=3, replicas=1, password=PASSWORD)
        cluster.start()
    except (LocalRedisError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"the 6-node redis cluster could not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis_cluster(redis_cluster_session: LocalCluster) -> LocalCluster:
    """The session's cluster, healthy: nodes an earlier test killed are restarted first."""
    cluster = redis_cluster_session
    try:
        for node in cluster.nodes:
            if not node.running:
                node.start()
        cluster.wait_ok()
    except LocalRedisError as exc:
        pytest.fail(f"the redis cluster could not be repaired: {exc}", pytrace=False)
    return cluster


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


@pytest.fixture
def standalone_url(redis_server: LocalRedis, prefix: str) -> str:
    return f"redis://{redis_server.address}?prefix={prefix}"


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster, prefix: str) -> str:
    return f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}"


def owner_of(nodes: list[LocalRedis], key: str) -> LocalRedis:
    """The running master that serves ``key`` (the one that does not answer MOVED)."""
    for node in nodes:
        if not node.running:
            continue
        if not node.cluster:
            return node
        if node.cli("ROLE").startswith("master") and "MOVED" not in node.cli(
            "EXISTS", key, check=False
        ):
            return node
    raise AssertionError(f"no running master serves {key!r}")
