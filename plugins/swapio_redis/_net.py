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
import bisect
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hiredis import pack_command
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.exceptions import (
    AuthenticationError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from swapio.errors import BackendIOError, LocationError

from ._options import ENV_PASSWORD, ENV_PASSWORD_FILE, Credentials, RedisOptions

#: One command: its name then its arguments (bytes, str, int or a page buffer).
Command = Sequence[Any]
HASH_SLOTS: Final = 16384


def _pack(command: Command) -> bytes:
    """One command in RESP, by hiredis's packer (C; the one redis-py's synchronous client uses).

    redis-py's asyncio connection packs in Python, 1 µs per key of a ``MGET``; hiredis does
    the same 8 times faster.  It takes ``bytes``, ``str``, ``int``, ``float`` and
    ``memoryview`` arguments (a page given as a ``bytearray`` is passed as a view of it).
    """
    packed: bytes = pack_command(command if type(command) is tuple else tuple(command))
    return packed


async def roundtrip(conn: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and read every reply; error replies come back in place.

    A connection-level failure (reset, timeout, cancellation) disconnects ``conn`` and
    propagates: the replies after it are unknown, and the next command on ``conn`` connects
    afresh.  The caller bounds the time (:class:`Endpoint`).
    """
    try:
        await conn.send_packed_command([_pack(c) for c in commands], check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        # redis-py disconnects on failures inside send/read; make sure no reply is left
        # unread on a connection that is reused.
        await conn.disconnect(nowait=True)
        raise


class Endpoint(ABC):
    """One server: runs a pipeline of commands on one of its connections.

    A round trip — connecting and logging in if needed, sending, reading every reply — must
    end within the area's ``timeout`` (:class:`TimeoutError` otherwise).  The connections
    have no per-operation socket timeout: redis-py implements that with ``asyncio.wait_for``
    (a task) around every send and a timer around every read, which cost more CPU than the
    rest of a 16-key ``MGET``; one timer per round trip bounds the same thing.
    """

    name: str

    @abstractmethod
    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]: ...


class _PoolEndpoint(Endpoint):
    """One server behind a redis-py ``BlockingConnectionPool``.

    Connections taken from the pool are kept on an idle list and reused without going back
    through the pool, whose ``get_connection`` (a condition, a timeout scope, a readiness
    probe of the socket, metrics) costs as much CPU as a 16-key ``MGET``.  The pool still
    bounds how many exist; :meth:`close` returns them.
    """

    def __init__(self, name: str, pool: BlockingConnectionPool, timeout: float) -> None:
        self.name = name
        self._pool = pool
        self._timeout = timeout
        self._idle: list[AbstractConnection] = []

    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]:
        async with asyncio.timeout(self._timeout):
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                return await roundtrip(conn, commands)
            finally:
                self._idle.append(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)


class _NodeEndpoint(Endpoint):
    def __init__(self, node: ClusterNode, timeout: float) -> None:
        self.name = node.name
        self.node = node
        self._timeout = timeout

    async def roundtrip(self, commands: Sequence[Command]) -> list[Any]:
        async with asyncio.timeout(self._timeout):
            conn = self.node.acquire_connection()
            try:
                return await roundtrip(conn, commands)
            finally:
                self.node.release(conn)


def describe_text(exc: BaseException) -> str:
    """The first line of an exception's message (or its type)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def describe_connect_error(exc: BaseException, options: RedisOptions) -> BackendIOError:
    """One line for a failure to reach or log in to the store (never the password)."""
    where = options.where
    text = describe_text(exc)
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
        # no per-operation socket timeout: each round trip has one (see Endpoint)
        "socket_timeout": None,
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
        self._endpoint = _PoolEndpoint(f"{host}:{port}", self._pool, options.timeout)
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
        await self._endpoint.close()
        await self._pool.disconnect()


@dataclass(frozen=True)
class SlotMap:
    """The cluster's hash-slot ranges and their masters, from ``CLUSTER SLOTS`` (sans-I/O).

    A handful of ranges searched with :func:`bisect.bisect_right`: building and consulting it
    costs microseconds, where a 16384-entry table would hold the event loop for milliseconds
    at every refresh.
    """

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    masters: tuple[tuple[str, int], ...]
    replicas: tuple[int, ...]

    @classmethod
    def parse(cls, reply: Any, seed_host: str) -> SlotMap:
        """``CLUSTER SLOTS``: ``[[start, end, [host, port, id, ...], replica...], ...]``."""
        rows = []
        for entry in reply:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            rows.append((start, end, (host or seed_host, int(master[1])), len(entry) - 3))
        rows.sort()
        return cls(
            starts=tuple(r[0] for r in rows),
            ends=tuple(r[1] for r in rows),
            masters=tuple(r[2] for r in rows),
            replicas=tuple(r[3] for r in rows),
        )

    @property
    def covered(self) -> int:
        return sum(e - s + 1 for s, e in zip(self.starts, self.ends, strict=True))

    def master_of(self, hash_slot: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.starts, hash_slot) - 1
        if i >= 0 and hash_slot <= self.ends[i]:
            return self.masters[i]
        return None


def _name(host: str, port: int) -> str:
    return f"{host}:{port}"


class ClusterTopology(Topology):
    """A Redis Cluster (``redis+cluster://``), discovered from the seed nodes.

    The slot map comes from ``CLUSTER SLOTS`` of the first node that answers (known masters
    first, then the seeds); each master gets a redis-py ``ClusterNode`` (its connections).
    """

    cluster = True

    def __init__(self, options: RedisOptions, creds: Credentials, connections: int) -> None:
        kwargs = _connection_kwargs(options, creds, connections)
        self._max_connections = kwargs.pop("max_connections")
        self._kwargs = kwargs
        self._connection_class = SSLConnection if options.tls else Connection
        self._options = options
        self._nodes: dict[str, _NodeEndpoint] = {}
        self._map = SlotMap((), (), (), ())
        self._replicas: dict[str, int] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def _node(self, host: str, port: int) -> _NodeEndpoint:
        name = _name(host, port)
        endpoint = self._nodes.get(name)
        if endpoint is None:
            node = ClusterNode(
                host,
                port,
                max_connections=self._max_connections,
                connection_class=self._connection_class,
                **self._kwargs,
            )
            endpoint = _NodeEndpoint(node, self._options.timeout)
            self._nodes[name] = endpoint
        return endpoint

    async def _discover(self) -> None:
        """Read the slot map from the first node that answers ``CLUSTER SLOTS``."""
        candidates = list(dict.fromkeys([*self._map.masters, *self._options.nodes]))
        last: BaseException | None = None
        for host, port in candidates:
            try:
                (reply,) = await self._node(host, port).roundtrip([("CLUSTER", "SLOTS")])
            except AuthenticationError:
                raise
            except (RedisError, OSError) as exc:
                last = exc
                continue
            if isinstance(reply, ResponseError):
                if "cluster support disabled" in str(reply):
                    raise LocationError(
                        f"redis at {host}:{port} is not a cluster node; use "
                        f"redis://{self._options.where}?prefix={self._options.prefix}"
                    )
                if isinstance(reply, AuthenticationError) or "NOAUTH" in str(reply):
                    raise reply
                last = reply
                continue
            self._map = SlotMap.parse(reply, host)
            self._replicas = {
                _name(*m): r for m, r in zip(self._map.masters, self._map.replicas, strict=True)
            }
            return
        raise RedisConnectionError(f"no cluster node answered: {last}")

    async def connect(self) -> None:
        try:
            await self._discover()
            # every master must answer (and accept the credentials) before any I/O
            masters = self.primaries()
            replies = await asyncio.gather(
                *(m.roundtrip([("PING",)]) for m in masters), return_exceptions=True
            )
            for master, reply in zip(masters, replies, strict=True):
                if isinstance(reply, BaseException):
                    if isinstance(reply, AuthenticationError):
                        raise reply
                    raise RedisConnectionError(
                        f"master {master.name} does not answer: {describe_text(reply)}"
                    )
                if isinstance(reply[0], ResponseError):
                    raise reply[0]
        except (RedisError, OSError) as exc:
            await self.close()
            if isinstance(exc, LocationError):
                raise
            raise describe_connect_error(exc, self._options) from None
        except BaseException:
            await self.close()
            raise
        if self._map.covered != HASH_SLOTS:
            await self.close()
            raise BackendIOError(
                f"redis cluster at {self._options.where}: only {self._map.covered} of "
                f"{HASH_SLOTS} hash slots are assigned to a master"
            )

    def route(self, hash_slot: int) -> Endpoint:
        master = self._map.master_of(hash_slot)
        if master is None:
            raise RedisConnectionError(f"hash slot {hash_slot} is served by no master")
        return self._node(*master)

    def endpoint(self, host: str, port: int) -> Endpoint:
        return self._node(host, port)

    def primaries(self) -> list[Endpoint]:
        return [self._node(*m) for m in dict.fromkeys(self._map.masters)]

    def replicas(self, endpoint: Endpoint) -> int:
        return self._replicas.get(endpoint.name, 0)

    async def refresh(self) -> None:
        # Concurrent requests that hit the same failure share one CLUSTER SLOTS refresh.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._discover())
        await asyncio.shield(self._refreshing)

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(BaseException):
                await self._refreshing
        for endpoint in self._nodes.values():
            with contextlib.suppress(RedisError, OSError):
                await endpoint.node.disconnect()
