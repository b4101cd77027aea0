"""The redis backend on a real 6-node Redis Cluster: layout, round trips, failover, resharding."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from swapio_redis._layout import STRIPE_PAGES, runs_by_hash_slot
from swapio_redis.local import LocalCluster, LocalRedis

from swapio.area import CreateRequest, SwapArea
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import owner_of

PAGE = 4096


def _keys_on(node: LocalRedis, prefix: str) -> int:
    cursor, found = "0", 0
    while True:
        lines = node.cli("SCAN", cursor, "MATCH", f"{{{prefix}/*", "COUNT", "1000").split()
        cursor, found = lines[0], found + len(lines) - 1
        if cursor == "0":
            return found


async def _fill(area: SwapArea, count: int, generation: int = 0) -> None:
    step = area.capabilities.max_pages_per_request
    for first in range(0, count, step):
        n = min(step, count - first)
        data = b"".join(page_pattern(s, generation, PAGE) for s in range(first, first + n))
        await area.write(first, data)


async def test_keys_land_on_every_master(
    redis_cluster: LocalCluster, cluster_url: str, prefix: str
) -> None:
    area = await PluginHost().activate(cluster_url, create=CreateRequest(512))
    try:
        await _fill(area, 512)
    finally:
        await area.deactivate()
    masters = redis_cluster.masters()
    assert len(masters) == 3
    counts = [_keys_on(m, prefix) for m in masters]
    assert all(c > 0 for c in counts), counts
    assert sum(counts) == 512


async def test_multi_page_request_costs_one_round_trip_per_node(cluster_url: str) -> None:
    area = await PluginHost().activate(cluster_url, create=CreateRequest(1024))
    try:
        store = area.private
        await _fill(area, 128)
        for first, count in ((0, 128), (40, 64), (3, 1)):
            nodes = {
                store.topology.route(hs).name
                for hs, _, _ in runs_by_hash_slot(store.layout, first, count)
            }
            before = store.engine.round_trips
            data = await area.read(first, count)
            assert store.engine.round_trips - before == len(nodes)
            expected = b"".join(page_pattern(s, 0, PAGE) for s in range(first, first + count))
            assert data == expected
    finally:
        await area.deactivate()


async def test_a_stripe_unit_of_slots_shares_one_hash_slot(cluster_url: str) -> None:
    area = await PluginHost().activate(cluster_url, create=CreateRequest(256))
    try:
        layout = area.private.layout
        runs = list(runs_by_hash_slot(layout, 0, 256))
        assert len(runs) == 256 // STRIPE_PAGES
        assert len({hs for hs, _, _ in runs}) == len(runs)  # 16 different hash slots
    finally:
        await area.deactivate()


async def test_kill_of_a_master_mid_durable_stream_loses_no_acknowledged_page(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&durable=1&timeout=60"
    area = await PluginHost().activate(url, create=CreateRequest(2048))
    acknowledged: list[tuple[int, int]] = []
    killed = asyncio.Event()
    enough = asyncio.Event()
    after_kill = 0
    victim = owner_of(redis_cluster.masters(), area.private.layout.key(0).decode())

    async def stream() -> None:
        nonlocal after_kill
        slot = 0
        while after_kill < 24:
            count = 16
            data = b"".join(page_pattern(s, 1, PAGE) for s in range(slot, slot + count))
            await area.write(slot, data)  # returns only after WAIT confirmed the replica
            acknowledged.append((slot, count))
            if len(acknowledged) >= 20:
                enough.set()
            if killed.is_set():
                after_kill += 1
            slot = (slot + count) % 2048

    try:
        writer = asyncio.ensure_future(stream())
        await asyncio.wait_for(enough.wait(), 30)
        victim.kill()  # kill -9 in the middle of the stream
        killed.set()
        await asyncio.wait_for(writer, 90)  # the stream continues after the promotion
        assert victim.address not in {m.address for m in redis_cluster.masters()}
        for slot, count in acknowledged:
            got = await area.read(slot, count)
            assert got == b"".join(page_pattern(s, 1, PAGE) for s in range(slot, slot + count))
    finally:
        await area.deactivate()


async def test_resharding_during_io_loses_nothing(redis_cluster: LocalCluster, prefix: str) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&timeout=60"
    area = await PluginHost().activate(url, create=CreateRequest(1024))
    store = area.private
    masters = redis_cluster.masters()
    source = owner_of(masters, store.layout.key(0).decode())
    target = next(m for m in masters if m is not source)
    before = {store.topology.route(hs).name for hs in store.layout.stripe_hash_slots()}
    expected: dict[int, bytes] = {}
    generation = 0
    rng = random.Random(7)
    done = False

    async def io() -> None:
        nonlocal generation
        while not done:
            generation += 1
            jobs = []
            for slot in rng.sample(range(1024), 16):
                data = page_pattern(slot, generation, PAGE)
                expected[slot] = data
                jobs.append(area.write(slot, data))
            await asyncio.gather(*jobs)
            for slot in rng.sample(sorted(expected), 16):
                assert bytes(await area.read(slot)) == expected[slot]

    try:
        await _fill(area, 1024)
        expected.update({s: page_pattern(s, 0, PAGE) for s in range(1024)})
        worker = asyncio.ensure_future(io())
        started = time.monotonic()
        await asyncio.to_thread(
            source.cli,
            "--cluster", "reshard", source.address,
            "--cluster-from", source.cli("CLUSTER", "MYID").strip(),
            "--cluster-to", target.cli("CLUSTER", "MYID").strip(),
            "--cluster-slots", "1500", "--cluster-yes",
            timeout=300,
        )  # fmt: skip
        done = True
        await asyncio.wait_for(worker, 60)
        assert time.monotonic() - started > 0
        await store.topology.refresh()
        moved = store.topology.route(store.layout.hash_slot(0)).name
        assert moved == target.address  # the I/O really crossed a migration
        assert before  # the area spanned several nodes before
        for slot in range(1024):
            assert bytes(await area.read(slot)) == expected[slot], slot
    finally:
        done = True
        await area.deactivate()


@pytest.mark.slow
async def test_every_master_killed_in_turn_under_durable_random_io_loses_nothing(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    """Deep variant: each of the three shards fails over once while random durable writes
    and verified reads run; the killed node comes back as a replica before the next kill."""
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&durable=1&timeout=60"
    area = await PluginHost().activate(url, create=CreateRequest(1024))
    expected: dict[int, bytes] = {}
    rng = random.Random(11)
    generation = 0
    victims = redis_cluster.masters()
    assert len(victims) == 3

    async def io(stop: asyncio.Event) -> None:
        nonlocal generation
        while not stop.is_set():
            generation += 1
            slots = rng.sample(range(1024), 8)
            await asyncio.gather(*(area.write(s, page_pattern(s, generation, PAGE)) for s in slots))
            expected.update({s: page_pattern(s, generation, PAGE) for s in slots})
            for s in rng.sample(sorted(expected), 8):
                assert bytes(await area.read(s)) == expected[s]

    try:
        for victim in victims:  # one failover per shard
            stop = asyncio.Event()
            worker = asyncio.ensure_future(io(stop))
            await asyncio.sleep(0.5)
            victim.kill()
            await asyncio.sleep(4)  # failure detection and promotion happen under load
            stop.set()
            await asyncio.wait_for(worker, 90)
            victim.start()
            await asyncio.to_thread(redis_cluster.wait_ok)
        for slot, data in expected.items():
            assert bytes(await area.read(slot)) == data
    finally:
        await area.deactivate()


async def test_losing_a_whole_shard_fails_requests_after_the_timeout(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    from .test_cli_errors import kill_shard_of_slot_0

    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}&timeout=3"
    area = await PluginHost().activate(url, create=CreateRequest(256))
    try:
        await _fill(area, 256)
        dead = kill_shard_of_slot_0(redis_cluster, prefix)
        with pytest.raises(BackendIOError, match="still failing after 3 s"):
            await area.read(0)
        survivor = next(
            s for s in range(0, 256, 16)
            if area.private.topology.route(area.private.layout.hash_slot(s)).name != dead.address
        )  # fmt: skip
        # Redis's default cluster-require-full-coverage=yes: the other shards refuse too
        with pytest.raises(BackendIOError, match="cluster is down"):
            await area.read(survivor)
    finally:
        await area.deactivate()
