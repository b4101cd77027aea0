"""Activation of a Redis area: log in, find or create the metadata record, check durability.

Creation refuses a prefix that already holds a metadata record (:class:`AreaExistsError`)
or page keys without one (foreign or leftover data: :class:`AreaFormatError`), and writes the
record with ``SET NX``, so two creators cannot both win.  Opening refuses a record of
another format or version (:class:`AreaFormatError`).  A failed activation writes nothing.

With ``durable=1`` the servers' persistence is read at activation (``CONFIG GET appendonly
appendfsync``, the replica count of every master) and reported in :attr:`RedisArea.durability`
and the log; an area that nothing would protect (no replica to ``WAIT`` for and no AOF with
``appendfsync always``) is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from redis.exceptions import (
    AskError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from swapio.area import CreateRequest
from swapio.errors import (
    AreaExistsError,
    AreaFormatError,
    AreaNotFoundError,
    BackendIOError,
    CapabilityError,
    SwapioError,
)
from swapio.location import Location

from ._engine import Engine
from ._layout import Layout, Meta
from ._net import ClusterTopology, StandaloneTopology, Topology, describe_connect_error
from ._options import RedisOptions, credentials_from_env, parse_options

log = logging.getLogger("swapio_redis")

#: Requests the core may have in flight on one area.
QUEUE_DEPTH: Final = 32
_SCAN_COUNT: Final = 1000
#: How long activation's ``WAIT`` for the metadata record's replicas may take.
WAIT_MS: Final = 5000


@dataclass
class RedisArea:
    """An active Redis area: the ``private`` state of its :class:`~swapio.area.SwapArea`."""

    options: RedisOptions
    topology: Topology
    layout: Layout
    meta: Meta
    engine: Engine
    #: What protects a completed swap-out, as found at activation (docs/redis.md).
    durability: str

    async def close(self) -> None:
        await self.engine.close()
        await self.topology.close()


async def call(
    topology: Topology, options: RedisOptions, hash_slot: int, *args: Any, wait: int | None = None
) -> Any:
    """One command on the master of ``hash_slot``, following redirections until ``timeout``.

    With ``wait``, a ``WAIT wait`` follows on the same connection, and fewer confirmations
    than ``wait`` is a :class:`BackendIOError`.
    """
    deadline = time.monotonic() + options.timeout
    ask: tuple[str, int] | None = None
    while True:
        endpoint = topology.endpoint(*ask) if ask else topology.route(hash_slot)
        wire: list[Any] = [("ASKING",), args] if ask else [args]
        if wait is not None:
            wire.append(("WAIT", wait, WAIT_MS))
        replies = await endpoint.roundtrip(wire)
        reply = replies[1 if ask else 0]
        if not isinstance(reply, ResponseError):
            if wait is not None and (
                isinstance(replies[-1], ResponseError) or int(replies[-1]) < wait
            ):
                raise BackendIOError(
                    f"redis {endpoint.name}: {args[0]} not confirmed by {wait} replica(s) "
                    f"within {WAIT_MS} ms ({replies[-1]})"
                )
            return reply
        if time.monotonic() > deadline:
            raise reply
        if isinstance(reply, MovedError):
            ask = None
            await topology.refresh()
        elif isinstance(reply, AskError):
            ask = reply.node_addr
        elif isinstance(reply, TryAgainError):
            await asyncio.sleep(0.05)
        else:
            raise reply


async def _foreign_keys(topology: Topology, layout: Layout) -> int:
    """Page keys under the prefix on any master (0 if none); stops at the first batch found."""
    for endpoint in topology.primaries():
        cursor: Any = b"0"
        while True:
            ((cursor, keys),) = await endpoint.roundtrip(
                [("SCAN", cursor, "MATCH", layout.page_pattern, "COUNT", _SCAN_COUNT)]
            )
            if keys:
                return len(keys)
            if int(cursor) == 0:
                break
    return 0


async def _persistence(topology: Topology) -> tuple[list[str], bool]:
    """Each master's AOF policy as text, and whether every one fsyncs each write."""
    found: list[str] = []
    always = True
    for endpoint in topology.primaries():
        (reply,) = await endpoint.roundtrip([("CONFIG", "GET", "append*")])
        if isinstance(reply, ResponseError):
            found.append(f"{endpoint.name}: persistence unknown (CONFIG refused)")
            always = False
            continue
        # RESP3 answers a map, RESP2 a flat list of names and values.
        pairs = (
            reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
        )
        aof = pairs.get(b"appendonly", b"?").decode()
        fsync = pairs.get(b"appendfsync", b"?").decode()
        found.append(f"{endpoint.name}: appendonly={aof} appendfsync={fsync}")
        always = always and aof == "yes" and fsync == "always"
    return found, always


async def _durability(topology: Topology, options: RedisOptions) -> str:
    policies, aof_always = await _persistence(topology)
    counts = [topology.replicas(e) for e in topology.primaries()]
    waited = options.replicas if options.replicas is not None else min(counts, default=0)
    wait_text = (
        f"WAIT for {options.replicas} replica(s)"
        if options.replicas is not None
        else f"WAIT for every replica of the shard ({min(counts)}-{max(counts)} per master)"
    )
    report = (
        f"durable=1: {wait_text}; AOF: {'; '.join(policies)}"
        if options.durable
        else f"not durable (durable=0); replicas per master: {counts}; AOF: {'; '.join(policies)}"
    )
    if options.replicas is not None and counts and options.replicas > min(counts):
        poorest = min(topology.primaries(), key=topology.replicas)
        raise CapabilityError(
            f"redis {options.where}: durable=1 refused: replicas={options.replicas} but "
            f"{poorest.name} has {topology.replicas(poorest)} replica(s) now"
        )
    if options.durable and waited == 0 and not aof_always:
        raise CapabilityError(
            f"redis {options.where}: durable=1 refused: no replica to WAIT for and no AOF with "
            f"appendfsync always ({'; '.join(policies)}); add replicas, set appendfsync always, "
            "or drop durable=1"
        )
    return report


async def _create(
    topology: Topology, options: RedisOptions, layout: Layout, req: CreateRequest
) -> Meta:
    where = f"redis {options.where} prefix {options.prefix!r}"
    existing = await call(topology, options, layout.meta_hash_slot, "GET", layout.meta_key)
    if existing is not None:
        meta = Meta.decode(existing, where)
        raise AreaExistsError(
            f"{where} already holds an area ({meta.pages} pages of {meta.page_size} bytes); "
            "not overwritten"
        )
    found = await _foreign_keys(topology, layout)
    if found:
        raise AreaFormatError(
            f"{where}: keys of the form {layout.page_pattern.decode()} exist but no swapio "
            "metadata record (foreign or leftover data); choose another prefix"
        )
    meta = Meta(pages=req.pages, page_size=req.page_size)
    wait = None
    if options.durable:
        wait = (
            options.replicas
            if options.replicas is not None
            else topology.replicas(topology.route(layout.meta_hash_slot))
        )
    won = await call(
        topology,
        options,
        layout.meta_hash_slot,
        "SET",
        layout.meta_key,
        meta.encode(),
        "NX",
        wait=wait,
    )
    if won is None:
        raise AreaExistsError(f"{where} was created by someone else meanwhile; not overwritten")
    return meta


async def _open(topology: Topology, options: RedisOptions, layout: Layout) -> Meta:
    where = f"redis {options.where} prefix {options.prefix!r}"
    raw = await call(topology, options, layout.meta_hash_slot, "GET", layout.meta_key)
    if raw is None:
        raise AreaNotFoundError(f"{where}: no swapio area there (create it first)")
    return Meta.decode(raw, where)


async def activate(location: Location, create: CreateRequest | None) -> RedisArea:
    """Open (or create) the area at ``location``; everything is released on failure."""
    options = parse_options(location)
    creds = credentials_from_env()
    connections = QUEUE_DEPTH + options.rounds + 4
    topology: Topology = (
        ClusterTopology(options, creds, connections)
        if options.cluster
        else StandaloneTopology(options, creds, connections)
    )
    await topology.connect()
    try:
        layout = Layout(options.prefix)
        where = f"redis {options.where} prefix {options.prefix!r}"
        try:
            durability = await _durability(topology, options)
            if create is not None:
                meta = await _create(topology, options, layout, create)
            else:
                meta = await _open(topology, options, layout)
        except ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                raise AreaFormatError(
                    f"{where}: {layout.meta_key.decode()} holds foreign data "
                    "(not a swapio metadata record); choose another prefix"
                ) from None
            raise describe_connect_error(exc, options) from None
        except (RedisError, RedisClusterException, OSError) as exc:
            if isinstance(exc, SwapioError):
                raise
            raise describe_connect_error(exc, options) from None
        log.info("%s: %s", where, durability)
        engine = Engine(topology, options, layout, meta.page_size)
        return RedisArea(options, topology, layout, meta, engine, durability)
    except BaseException:
        await topology.close()
        raise


async def remove_area(url: str) -> None:
    """Delete the area at ``url``: every page key, then its metadata record."""
    from swapio.pool import PagePool  # noqa: PLC0415 (only the bench removes areas)

    store = await activate(Location.parse(url), None)
    try:
        await store.engine.discard(PagePool.unbounded(store.meta.page_size), 0, store.meta.pages)
        await call(
            store.topology, store.options, store.layout.meta_hash_slot, "DEL", store.layout.meta_key
        )
    finally:
        await store.close()
