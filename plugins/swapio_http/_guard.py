"""Connection limits of the page server: how many, and how long a request head may take.

aiohttp's server closes a kept-alive connection that stays idle (``keepalive_timeout``, which
swapio sets to ``--idle-timeout``) but has no limit on open connections and none on the time a
client takes to send a request head (slowloris).  :class:`ConnectionGuard` wraps aiohttp's
protocol for each accepted connection (:class:`GuardedSite`):

* **open connections**: beyond ``max_connections`` a new connection is answered
  ``503 too-many-connections`` and closed at once, so its file descriptor is freed and idle
  connections cannot starve the server of descriptors (accept would fail with ``EMFILE``).
* **header time**: a connection must deliver a complete request head within
  ``header_timeout`` seconds of connecting and of the first byte of each later head, or it is
  closed.  The application tells the guard when a request's handling starts and ends
  (:meth:`ConnectionGuard.request_started` / :meth:`request_done`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: Connections the server keeps open at most by default, and its share of the open-file limit.
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30.0


def _refusal() -> bytes:
    body = json.dumps(
        {"error": "too-many-connections", "message": "the page server has too many connections"}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()


@dataclass
class ConnectionGuard:
    """Counts connections and times request heads (see the module docstring)."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    open: int = 0
    refused: int = 0
    timed_out: int = 0
    _by_transport: dict[Any, _Guarded] = field(default_factory=dict)

    def wrap(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _Guarded(self, inner)

    def request_started(self, transport: Any) -> None:
        guarded = self._by_transport.get(transport)
        if guarded is not None:
            guarded.busy = True
            guarded.disarm()

    def request_done(self, transport: Any) -> None:
        guarded = self._by_transport.get(transport)
        if guarded is not None:
            guarded.busy = False


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if guard.open >= guard.max_connections:
            self._refused = True
            guard.refused += 1
            transport.write(REFUSAL)
            transport.close()
            return
        guard.open += 1
        self._transport = transport
        guard._by_transport[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._expire)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.busy and self._transport is not None:
            self._guard.timed_out += 1
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self.busy and self._deadline is None:
            self._arm()  # the first bytes of a new request head: it has header_timeout s
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self.disarm()
        self._guard.open -= 1
        self._guard._by_transport.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.Protocol] = lambda: self.guard.wrap(server())  # noqa: E731
        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog
        )
