"""Connection limits of the page server: how many, and how long a request head may take.

aiohttp's server closes a kept-alive connection that stays idle (``keepalive_timeout``, which
swapio sets to ``--idle-timeout``) but has no limit on open connections and none on the time a
client takes to send a request head (slowloris).  :class:`ConnectionGuard` keeps the count
and the limits; each accepted connection's protocol (:class:`swapio_http._lane.LaneProtocol`,
in front of aiohttp's, made by :class:`GuardedSite`) applies them:

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
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._lane import Lane, LaneProtocol

#: Connections the server keeps open at most by default, and its share of the open-file limit.
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 30.0
#: The head buffer the transport reads into (bytes of a body read with a head are copied
#: twice, into the connection's buffer and then the pool buffer; the rest of a body arrives
#: straight in its pool buffer): small, and a whole head at most.
_SCRATCH_BYTES = 1 << 13


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
    #: Set when the server shuts down: lane connections close after their answer.
    closing: bool = False
    refusal: bytes = REFUSAL
    _by_transport: dict[Any, LaneProtocol] = field(default_factory=dict)

    def register(self, transport: Any, protocol: LaneProtocol) -> None:
        self._by_transport[transport] = protocol

    def unregister(self, transport: Any) -> None:
        self._by_transport.pop(transport, None)

    def request_started(self, transport: Any) -> None:
        guarded = self._by_transport.get(transport)
        if guarded is not None:
            guarded.busy = True
            guarded.disarm()

    def request_done(self, transport: Any) -> None:
        guarded = self._by_transport.get(transport)
        if guarded is not None:
            guarded.busy = False

    def shut_down(self) -> None:
        """No more lane requests: close the lane connections that are between requests
        (aiohttp closes its own; busy ones close after their answer)."""
        self.closing = True
        for protocol in list(self._by_transport.values()):
            if protocol.idle:
                protocol.close()


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
        lane: Lane | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.guard = guard
        self.lane = lane
        self.idle_timeout = idle_timeout

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        # one receive buffer for every connection's heads: the transport fills it and the
        # protocol copies out of it before the loop serves any other connection
        scratch = memoryview(bytearray(_SCRATCH_BYTES))

        def factory() -> asyncio.BaseProtocol:
            return LaneProtocol(self.guard, server, self.lane, self.idle_timeout, scratch)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog
        )
