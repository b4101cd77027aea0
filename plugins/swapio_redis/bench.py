"""The redis backend in ``swapio bench``: a local redis-server, and two peers on it.

The placement starts ``redis-server`` on a free loopback port (no persistence, data in the
bench's directory) unless ``--redis URL`` (or ``$SWAPIO_BENCH_REDIS``) names a server to use;
the area is ``bench-<uid>`` on it.  On exit the area's keys are deleted and the server stopped.

Peers, on the same server in the same run:

* ``redis-py-per-page`` — what a user writes without swapio: the redis-py asyncio client
  (hiredis), one ``SET``/``GET`` per page, ``qd`` of them in flight through its connection
  pool for the random workloads.
* ``redis-benchmark`` — the C benchmark shipped with Redis, ``-t set,get -d PAGE -c QD``:
  the server's own ceiling for single-key commands at the same queue depth (``rand-out`` is
  its ``SET`` figure, ``rand-in`` its ``GET`` figure).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from swapio.area import PageBuffer
from swapio.bench.hook import (
    BenchOption,
    BenchPeer,
    BenchSite,
    BenchTarget,
    Durability,
    Kind,
    Latency,
    Result,
    Target,
)
from swapio.errors import BackendIOError
from swapio.location import Location

from ._options import RedisOptions, credentials_from_env, parse_options
from ._store import remove_area
from .local import LocalRedis, LocalRedisError, free_ports

OPTION: Final = "redis"
#: Requests ``redis-benchmark`` sends per test (0.3-1.5 s at loopback speed).
BENCHMARK_REQUESTS: Final = 20000


def _with_prefix(base: str, prefix: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}prefix={prefix}"


@asynccontextmanager
async def _place(site: BenchSite) -> AsyncIterator[str]:
    given = site.options.get(OPTION)
    prefix = f"bench-{site.uid}"
    if given:
        url = _with_prefix(given, prefix)
        try:
            yield url
        finally:
            await remove_area(url)
        return
    server = LocalRedis(site.directory / "redis", free_ports(1)[0])
    try:
        await asyncio.to_thread(server.start)
    except LocalRedisError as exc:
        raise BackendIOError(f"redis-server did not start: {exc}") from None
    pid = server.process.pid if server.process else "?"
    site.started(f"redis-server on {server.address} (pid {pid})")
    try:
        yield f"redis://{server.address}?prefix={prefix}"
    finally:
        await asyncio.to_thread(server.stop)


def _options(url: str) -> RedisOptions:
    return parse_options(Location.parse(url))


@dataclass
class PerPageTarget(Target):
    """Peer ``redis-py-per-page``: one redis-py command per page (see the module docstring)."""

    client: Any = None
    head: bytes = b""

    def _key(self, slot: int) -> bytes:
        return self.head + b"%d" % slot

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        for i, page in enumerate(pages):
            await self.client.set(self._key(slot + i), bytes(page))

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        for i, view in enumerate(views):
            value = await self.client.get(self._key(slot + i))
            if value is None:
                view[:] = bytes(len(view))
            else:
                view[:] = value

    async def close(self) -> None:
        if self.client is not None:
            keys = [k async for k in self.client.scan_iter(match=self.head + b"*", count=1000)]
            for i in range(0, len(keys), 1000):
                await self.client.unlink(*keys[i : i + 1000])
            await self.client.aclose()


@asynccontextmanager
async def _per_page(site: BenchSite, url: str) -> AsyncIterator[Target]:
    options = _options(url)
    if options.cluster:
        raise BackendIOError("the redis-py-per-page peer runs on a single server")
    creds = credentials_from_env()
    host, port = options.nodes[0]
    client = Redis(
        host=host,
        port=port,
        db=options.db,
        username=creds.username,
        password=creds.password,
        max_connections=max(site.config.qd, 1) + 4,
    )
    cfg = site.config
    target = PerPageTarget(
        "redis-py-per-page",
        Kind.PEER,
        cfg.page_size,
        cfg.pages,
        client=client,
        head=f"peer-{site.uid}:".encode(),
    )
    try:
        yield target
    finally:
        await target.close()


def _latency(row: list[str]) -> Latency:
    # CSV columns: test, rps, avg, min, p50, p95, p99, max (milliseconds)
    ms = [float(x) for x in row[2:8]]
    return Latency(p50=int(ms[2] * 1e6), p99=int(ms[4] * 1e6), max=int(ms[5] * 1e6))


async def _redis_benchmark(site: BenchSite, url: str, workloads: Sequence[str]) -> list[Result]:
    options = _options(url)
    host, port = options.nodes[0]
    cfg = site.config
    args = [
        "redis-benchmark", "-h", host, "-p", str(port), "--csv",
        "-t", "set,get", "-d", str(cfg.page_size), "-c", str(cfg.qd),
        "-n", str(BENCHMARK_REQUESTS), "--dbnum", str(options.db),
    ]  # fmt: skip
    creds = credentials_from_env()
    if creds.password:
        args += ["-a", creds.password]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BackendIOError(f"redis-benchmark failed: {err.decode(errors='replace').strip()}")
    rows = [
        [cell.strip('"') for cell in line.split(",")]
        for line in out.decode().splitlines()
        if line.startswith('"') and not line.startswith('"test"')
    ]
    shown = " ".join(a if a != creds.password else "***" for a in args)
    results = []
    for row in rows:
        workload = {"SET": "rand-out", "GET": "rand-in"}.get(row[0])
        if workload is None or workload not in workloads:
            continue
        rps = float(row[1])
        results.append(
            Result(
                target="redis-benchmark",
                kind=Kind.PEER,
                workload=workload,
                page_size=cfg.page_size,
                pages=BENCHMARK_REQUESTS,
                seconds=BENCHMARK_REQUESTS / rps,
                reported=_latency(row),
                extra={"command": shown, "qd": cfg.qd},
            )
        )
    # the key redis-benchmark wrote (key:__rand_int__) is left to the server it ran on
    return results


PEERS = (
    BenchPeer(
        "redis-py-per-page",
        Durability.REMOTE,
        "redis-py asyncio (hiredis), one SET/GET per page, qd in flight: Redis without swapio",
        open=_per_page,
        needs_modules=("redis",),
    ),
    BenchPeer(
        "redis-benchmark",
        Durability.REMOTE,
        "redis-benchmark -t set,get -d PAGE -c QD: the server's single-key ceiling",
        workloads=("rand-out", "rand-in"),
        measure=_redis_benchmark,
        needs=("redis-benchmark",),
        install_hint="apt-get install redis-tools",
    ),
)


def targets() -> list[BenchTarget]:
    """The ``redis`` target: a local redis-server (or ``--redis URL``), with its peers."""
    return [
        BenchTarget(
            name="redis",
            backend="redis",
            durability=Durability.REMOTE,
            place=_place,
            summary="pages as Redis keys (a local redis-server on loopback, no persistence)",
            needs=("redis-server", "redis-cli"),
            install_hint="apt-get install redis-server redis-tools",
            options=(
                BenchOption(
                    OPTION,
                    "URL",
                    "use this Redis (redis://HOST:PORT[/DB]) instead of starting redis-server",
                    envvar="SWAPIO_BENCH_REDIS",
                ),
            ),
            peers=PEERS,
            remove=remove_area,
        )
    ]
