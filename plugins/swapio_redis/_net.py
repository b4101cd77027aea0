"""Where a command goes: one Redis server, or the master of a hash slot in a Redis Cluster.

A :class:`Topology` routes hash slots to :class:`Endpoint`\\ s; an endpoint runs a list of
commands as one pipelined round trip on one connection (so a ``WAIT`` at the end covers the
writes before it, as ``WAIT`` counts the writes of its own connection) and returns each reply
or the server's error reply in place.  Connections, RESP encoding and parsing (hiredis) are
redis-py's; the cluster's slot map and node discovery are redis-py's ``RedisCluster``
(``CLUSTER SLOTS``).  Redirections (``MOVED``, ``ASK``), ``TRYAGAIN`` and failover are handled
one level up, in :mod:`swapio_redis._engine`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.exceptions import (
    AuthenticationError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from swapio.errors import BackendIOError, LocationError

from ._options import ENV_PASSWORD, ENV_PASSWORD_FILE, Credentials, RedisOptions

#: One command: its name then its arguments (bytes, str, int or a page buffer).
Command = Sequence[Any]


async def roundtrip(conn: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and read every reply; error replies come back in place.

    A connection-level failure (reset, timeout, cancellation) disconnects ``conn`` (redis-py
    does that in ``read_response``) and propagates: the replies after it are unknown.
    """
    await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except ResponseError as exc:
            replies.append(exc)
    return replies


class Endpoint(ABC):
    """One server: runs a pipeline of commands on one of its connections."""

    name: str

    @abstractmethod
    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]: ...


class _PoolEndpoint(Endpoint):
    def __init__(self, name: str, pool: BlockingConnectionPool) -> None:
        self.name = name
        self._pool = pool

    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]:
        conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await roundtrip(conn, commands)
        finally:
            await self._pool.release(conn)


class _NodeEndpoint(Endpoint):
    def __init__(self, node: ClusterNode) -> None:
        self.name = node.name
        self.node = node

    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]:
        conn = self.node.acquire_connection()
        try:
            return await roundtrip(conn, commands)
        finally:
            self.node.release(conn)


def describe_connect_error(exc: BaseException, options: RedisOptions) -> BackendIOError:
    """One line for a failure to reach or log in to the store (never the password)."""
    where = options.where
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    _, marker, cause = text.partition("at least one reachable node: ")
    if marker:  # RedisCluster.initialize: no seed node answered
        text = cause
    auth = ("WRONGPASS", "NOAUTH", "username-password", "Authentication required")
    if isinstance(exc, AuthenticationError) or any(a in text for a in auth):
        return BackendIOError(
            f"redis at {where} refused the credentials ({text}); check {ENV_PASSWORD} or "
            f"{ENV_PASSWORD_FILE}",
            detail=text,
        )
    if isinstance(exc, RedisConnectionError | OSError) or marker:
        return BackendIOError(f"cannot reach redis at {where}: {text}", detail=text)
    return BackendIOError(f"redis at {where}: {text}", detail=text)


def _connection_kwargs(options: RedisOptions, creds: Credentials, limit: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": creds.username,
        "password": creds.password,
        "socket_timeout": options.timeout,
        "socket_connect_timeout": min(options.timeout, 5.0),
        "max_connections": limit,
    }
    if options.tls:
        kwargs["ssl_ca_certs"] = options.cafile
        kwargs["ssl_cert_reqs"] = "required"
    return kwargs


class Topology(ABC):
    """The servers behind an area and how hash slots map to them."""

    cluster: bool

    @abstractmethod
    async def connect(self) -> None:
        """Log in and learn the layout; raise a one-line :class:`BackendIOError`."""

    @abstractmethod
    def route(self, hash_slot: int) -> Endpoint:
        """The master serving ``hash_slot`` now (as far as this client knows)."""

    @abstractmethod
    def endpoint(self, host: str, port: int) -> Endpoint:
        """The server at ``host:port`` (an ``ASK`` target)."""

    @abstractmethod
    def primaries(self) -> list[Endpoint]:
        """Every master."""

    @abstractmethod
    def replicas(self, endpoint: Endpoint) -> int:
        """How many replicas ``endpoint`` had at the last refresh."""

    @abstractmethod
    async def refresh(self) -> None:
        """Re-learn the layout (after ``MOVED``, a failed node, a failover)."""

    @abstractmethod
    async def close(self) -> None: ...


def _connected_replicas(info: Any) -> int:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("connected_slaves:"):
            return int(line.partition(":")[2])
    return 0


class StandaloneTopology(Topology):
    """One server (``redis://``): every hash slot routes to it."""

    cluster = False

    def __init__(self, options: RedisOptions, creds: Credentials, connections: int) -> None:
        host, port = options.nodes[0]
        kwargs = _connection_kwargs(options, creds, connections)
        self._pool = BlockingConnectionPool(
            connection_class=SSLConnection if options.tls else Connection,
            host=host,
            port=port,
            db=options.db,
            timeout=None,
            **kwargs,
        )
        self._options = options
        self._endpoint = _PoolEndpoint(f"{host}:{port}", self._pool)
        self._replicas = 0

    async def connect(self) -> None:
        try:
            ping, cluster_info, replication = await self._endpoint.roundtrip(
                [("PING",), ("INFO", "cluster"), ("INFO", "replication")]
            )
        except (RedisError, OSError) as exc:
            raise describe_connect_error(exc, self._options) from None
        for reply in (ping, cluster_info, replication):
            if isinstance(reply, ResponseError):
                raise describe_connect_error(reply, self._options)
        if b"cluster_enabled:1" in cluster_info:
            raise LocationError(
                f"redis at {self._options.where} is a Redis Cluster node; use "
                f"redis+cluster://{self._options.where}?prefix={self._options.prefix}"
            )
        self._replicas = _connected_replicas(replication)

    def route(self, hash_slot: int) -> Endpoint:
        return self._endpoint

    def endpoint(self, host: str, port: int) -> Endpoint:
        return self._endpoint

    def primaries(self) -> list[Endpoint]:
        return [self._endpoint]

    def replicas(self, endpoint: Endpoint) -> int:
        return self._replicas

    async def refresh(self) -> None:
        (replication,) = await self._endpoint.roundtrip([("INFO", "replication")])
        if not isinstance(replication, ResponseError):
            self._replicas = _connected_replicas(replication)

    async def close(self) -> None:
        await self._pool.disconnect()


class ClusterTopology(Topology):
    """A Redis Cluster (``redis+cluster://``), discovered from the seed nodes."""

    cluster = True

    def __init__(self, options: RedisOptions, creds: Credentials, connections: int) -> None:
        kwargs = _connection_kwargs(options, creds, connections)
        if options.tls:
            kwargs["ssl"] = True
        self._client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in options.nodes],
            require_full_coverage=True,
            **kwargs,
        )
        self._options = options
        self._endpoints: dict[str, _NodeEndpoint] = {}
        self._replicas: dict[str, int] = {}
        self._refreshing: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        try:
            await self._client.initialize()
        except (RedisError, RedisClusterException, OSError) as exc:
            await self._client.aclose()
            if isinstance(exc, RedisClusterException) and "not enabled" in str(exc):
                raise LocationError(
                    f"redis at {self._options.where} is not a cluster node; use "
                    f"redis://{self._options.where}?prefix={self._options.prefix}"
                ) from None
            raise describe_connect_error(exc, self._options) from None
        self._learn()

    def _learn(self) -> None:
        replicas: dict[str, int] = {}
        for nodes in self._client.nodes_manager.slots_cache.values():
            if nodes:
                replicas[nodes[0].name] = len(nodes) - 1
        self._replicas = replicas

    def _wrap(self, node: ClusterNode) -> Endpoint:
        endpoint = self._endpoints.get(node.name)
        if endpoint is None or endpoint.node is not node:
            endpoint = _NodeEndpoint(node)
            self._endpoints[node.name] = endpoint
        return endpoint

    def route(self, hash_slot: int) -> Endpoint:
        try:
            node = self._client.nodes_manager.get_node_from_slot(hash_slot)
        except RedisClusterException as exc:
            raise RedisConnectionError(str(exc)) from None
        return self._wrap(node)

    def endpoint(self, host: str, port: int) -> Endpoint:
        node = self._client.get_node(host=host, port=port)
        if node is None:
            raise RedisConnectionError(f"ASK to unknown node {host}:{port}")
        return self._wrap(node)

    def primaries(self) -> list[Endpoint]:
        return [self._wrap(node) for node in self._client.get_primaries()]

    def replicas(self, endpoint: Endpoint) -> int:
        return self._replicas.get(endpoint.name, 0)

    async def refresh(self) -> None:
        # Concurrent requests that hit the same failure share one CLUSTER SLOTS refresh.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._do_refresh())
        await asyncio.shield(self._refreshing)

    async def _do_refresh(self) -> None:
        await self._client.nodes_manager.initialize()
        self._learn()

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        await self._client.aclose()
