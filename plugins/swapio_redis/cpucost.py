"""Client CPU per page: swapio's coalesced swap-in against plain redis-py, on a local server.

``python -m swapio_redis.cpucost [PAGES]`` starts a redis-server on a free loopback port and
reads ``PAGES`` random single pages (default 20000) three ways, reporting wall-clock pages/s
and this process's CPU time per page (``time.process_time``, which a busy machine disturbs
far less than wall time):

* swapio rand-in at QD 32 (``area.swap_in`` of one page, 32 callers: coalesced rounds);
* redis-py ``MGET`` of 32 keys, one after another (the floor of any redis-py client);
* redis-py ``GET`` per page, 32 callers (``redis-py-per-page`` of ``swapio bench``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from swapio.area import CreateRequest
from swapio.plugins import PluginHost

from .local import LocalRedis, free_ports

QD = 32
HOT = 128
PAGE = 4096


async def _measure(name: str, count: int, body: Callable[[], Awaitable[None]]) -> None:
    cpu, wall = time.process_time(), time.monotonic()
    await body()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    print(f"{name:<24} {count / wall:>9,.0f} pages/s  {cpu / count * 1e6:5.1f} us CPU/page")


async def _run(server: LocalRedis, count: int) -> None:
    url = f"redis://{server.address}?prefix=cpucost"
    area = await PluginHost().activate(url, create=CreateRequest(HOT))
    client = Redis(host="127.0.0.1", port=server.port, max_connections=QD + 4)
    try:
        await area.write(0, bytes(range(256)) * (PAGE // 256) * HOT)
        keys = [area.private.layout.key(s) for s in range(HOT)]

        async def workers(one: Callable[[random.Random], Awaitable[object]]) -> None:
            left = count

            async def worker() -> None:
                nonlocal left
                rng = random.Random()
                while left > 0:
                    left -= 1
                    await one(rng)

            await asyncio.gather(*(worker() for _ in range(QD)))

        async def swapio_one(rng: random.Random) -> None:
            await area.swap_in(rng.randrange(HOT), [memoryview(bytearray(PAGE))])

        async def get_one(rng: random.Random) -> object:
            return await client.get(keys[rng.randrange(HOT)])

        async def mgets() -> None:
            rng = random.Random()
            for _ in range(count // QD):
                await client.mget(rng.sample(keys, QD))

        await _measure("swapio rand-in QD32", count, lambda: workers(swapio_one))
        await _measure("redis-py MGET x32", count // QD * QD, mgets)
        await _measure("redis-py GET QD32", count, lambda: workers(get_one))
    finally:
        await client.aclose()
        await area.deactivate()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory(prefix="swapio-cpucost-") as root:
        server = LocalRedis(Path(root), free_ports(1)[0])
        server.start()
        try:
            asyncio.run(_run(server, count))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
