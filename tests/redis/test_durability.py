"""``durable=1``: WAIT for replicas, and the persistence check at activation."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest
from swapio_redis import _engine as engine_module
from swapio_redis.local import LocalCluster, LocalRedis

from swapio.area import CreateRequest
from swapio.errors import BackendIOError, CapabilityError
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import owner_of

PAGE = 4096


def _replica_of(cluster: LocalCluster, master: LocalRedis) -> LocalRedis:
    for node in cluster.nodes:
        role = node.cli("ROLE").splitlines()
        if role[0] == "slave" and int(role[2]) == master.port:
            return node
    raise AssertionError(f"{master.address} has no replica")


async def test_a_durable_swap_out_waits_for_the_replica(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&durable=1&replicas=1&timeout=3"
    host = PluginHost()
    area = await host.activate(url, create=CreateRequest(64))
    master = owner_of(redis_cluster.masters(), area.private.layout.key(0).decode())
    replica = _replica_of(redis_cluster, master)
    assert replica.process is not None
    try:
        await area.write(0, page_pattern(0, 0, PAGE))  # the replica confirms: returns
        replica.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(BackendIOError, match=r"0 of 1 replica"):
                await area.write(0, page_pattern(0, 1, PAGE))  # nobody confirms: fails
        finally:
            replica.process.send_signal(signal.SIGCONT)
        await area.write(0, page_pattern(0, 2, PAGE))
        assert bytes(await area.read(0)) == page_pattern(0, 2, PAGE)
    finally:
        await area.deactivate()


async def test_a_non_durable_swap_out_does_not_wait(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&timeout=3"
    area = await PluginHost().activate(url, create=CreateRequest(64))
    master = owner_of(redis_cluster.masters(), area.private.layout.key(0).decode())
    replica = _replica_of(redis_cluster, master)
    assert replica.process is not None
    try:
        replica.process.send_signal(signal.SIGSTOP)
        try:
            await area.write(0, page_pattern(0, 1, PAGE))
        finally:
            replica.process.send_signal(signal.SIGCONT)
    finally:
        await area.deactivate()


async def test_durable_without_replicas_or_fsync_is_refused(
    redis_server: LocalRedis, prefix: str
) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}&durable=1"
    with pytest.raises(CapabilityError, match="no replica to WAIT for"):
        await PluginHost().activate(url, create=CreateRequest(8))
    assert redis_server.cli("EXISTS", f"{{{prefix}}}:meta").strip() == "0"  # nothing written
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "create", url, "--pages", "8"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stderr.decode().count("\n") == 1


async def test_durable_on_aof_with_fsync_always_is_accepted_and_reported(
    redis_server: LocalRedis, prefix: str
) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}&durable=1"
    redis_server.cli("CONFIG", "SET", "appendonly", "yes")
    redis_server.cli("CONFIG", "SET", "appendfsync", "always")
    try:
        area = await PluginHost().activate(url, create=CreateRequest(8))
        try:
            assert area.capabilities.durable
            assert "appendonly=yes appendfsync=always" in area.private.durability
            await area.write(0, page_pattern(0, 0, PAGE))
        finally:
            await area.deactivate()
    finally:
        redis_server.cli("CONFIG", "SET", "appendfsync", "everysec")
        redis_server.cli("CONFIG", "SET", "appendonly", "no")


async def test_every_replica_of_the_shard_follows_a_replica_that_joins(
    redis_cluster: LocalCluster, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&durable=1&timeout=60"
    area = await PluginHost().activate(url, create=CreateRequest(64))
    store = area.private
    hash_slot = store.layout.hash_slot(0)
    victim = owner_of(redis_cluster.masters(), store.layout.key(0).decode())
    try:
        # Precondition: the map read at activation may predate a replica an earlier test
        # restarted (a node's gossip clears its FAIL flag on its own clock): re-read it.
        for _ in range(100):
            if store.topology.replicas(store.topology.route(hash_slot)) == 1:
                break
            await asyncio.sleep(0.1)
            await store.topology.refresh()
        assert store.topology.replicas(store.topology.route(hash_slot)) == 1
        victim.kill()
        await area.write(0, page_pattern(0, 1, PAGE))  # retried until the replica took over
        promoted = store.topology.route(hash_slot)
        assert promoted.name != victim.address
        assert store.topology.replicas(promoted) == 0  # the shard has no replica left
        victim.start()  # comes back as a replica of the promoted master
        redis_cluster.wait_ok()
        monkeypatch.setattr(engine_module, "REPLICAS_REFRESH", 0.0)
        await area.write(1, page_pattern(1, 1, PAGE))  # starts a background re-read
        for _ in range(100):  # the re-read runs in the background: give it up to 10 s
            if store.topology.replicas(store.topology.route(hash_slot)) == 1:
                break
            await asyncio.sleep(0.1)
        assert store.topology.replicas(store.topology.route(hash_slot)) == 1
        await area.write(2, page_pattern(2, 1, PAGE))  # and now WAITs for it
        assert await area.read(0, 3) == b"".join(page_pattern(s, 1, PAGE) for s in range(3))
    finally:
        await area.deactivate()


async def test_more_replicas_than_the_shards_have_is_refused(
    redis_server: LocalRedis, redis_cluster: LocalCluster, prefix: str
) -> None:
    for url in (
        f"redis://{redis_server.address}?prefix={prefix}&durable=1&replicas=1",
        f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&durable=1&replicas=2",
    ):
        with pytest.raises(CapabilityError, match="replica\\(s\\) now"):
            await PluginHost().activate(url, create=CreateRequest(8))
