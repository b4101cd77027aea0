"""Redis behind the rest of swapio: the page server's store, and legs of a mirror."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from swapio_redis.local import LocalCluster, LocalRedis

from swapio.area import CreateRequest
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import fresh_prefix

PAGE = 4096
TOKEN = "redis-serve-token-0123456789"


@pytest.fixture
def page_server(redis_cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``swapio serve --store 'redis+cluster://...'`` as a real process; (base URL, prefix)."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    tag = fresh_prefix()
    store = f"redis+cluster://{redis_cluster.seeds}?prefix={tag}-{{owner}}-{{area}}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "swapio", "serve", "--port", "0", "--token-file", str(tokens),
         "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"swapio serve did not start: {line}{err.decode()}", pytrace=False)
        yield line.split("listening on", 1)[1].strip(), tag
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


async def test_the_page_server_stores_areas_in_a_redis_cluster(
    page_server: tuple[str, str], redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, tag = page_server
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    area = await PluginHost().activate(f"{base}/areas/a1", create=CreateRequest(512))
    try:
        data = b"".join(page_pattern(s, 0, PAGE) for s in range(256))
        await area.write(0, data)
        assert await area.read(0, 256) == data
    finally:
        await area.deactivate()
    keys = sum(
        len(m.cli("KEYS", f"{{{tag}-*").split()) for m in redis_cluster.masters()
    )  # page keys and the metadata record, on the cluster
    assert keys == 256 + 1


async def test_a_mirror_can_have_redis_legs(
    redis_server: LocalRedis, redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    leg0 = f"redis://{redis_server.address}?prefix={fresh_prefix()}"
    leg1 = f"redis+cluster://{redis_cluster.seeds}?prefix={fresh_prefix()}&durable=1"
    url = (
        f"mirror://m?bitmap={tmp_path}/m.bitmap&leg0={quote(leg0, safe='')}"
        f"&leg1={quote(leg1, safe='')}"
    )
    host = PluginHost()
    area = await host.activate(url, create=CreateRequest(256))
    try:
        data = b"".join(page_pattern(s, 5, PAGE) for s in range(64))
        await area.write(0, data)
        assert await area.read(0, 64) == data
    finally:
        await area.deactivate()
    for leg in (leg0, leg1):  # each leg holds every page
        one = await host.activate(leg)
        try:
            assert await one.read(0, 64) == data
        finally:
            await one.deactivate()
