"""The control channel between the program and its handler: JSON lines over a socketpair.

Sans-I/O framing (:func:`encode`, :class:`LineDecoder`) plus a small blocking client used by
the program side (:class:`Channel`).  File descriptors (the memfd and the userfaultfd) cross
once, with ``SCM_RIGHTS`` (``unix(7)``), attached to the ``attach`` message.

Messages (one JSON object per line):

* program → handler: ``{"op": "open", ...}``, ``{"op": "attach", ...}`` (+ 2 fds),
  ``{"op": "sync"}``, ``{"op": "stats"}``, ``{"op": "close"}``
* handler → program: ``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "kind": "..."}``
"""

from __future__ import annotations

import json
import socket
from typing import Any

from swapio.mapping.errors import HandlerDiedError

Message = dict[str, Any]
#: Longest line accepted (a stats reply is well under this).
MAX_LINE = 1 << 20


def encode(message: Message) -> bytes:
    """One message as a line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class LineDecoder:
    """Split a byte stream into messages, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Messages completed by ``data``."""
        self._buf += data
        out: list[Message] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    raise ValueError(f"control line longer than {MAX_LINE} bytes")
                return out
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError(f"control message is not an object: {line[:80]!r}")
            out.append(value)


class Channel:
    """The program's blocking end: send a request, wait for the handler's one reply."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._decoder = LineDecoder()
        self._pending: list[Message] = []

    def send(self, message: Message, fds: list[int] | None = None) -> None:
        """Send ``message`` (with ``fds`` by SCM_RIGHTS)."""
        data = encode(message)
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise HandlerDiedError(f"the mapping's handler process is gone ({exc})") from exc

    def receive(self, timeout: float | None = None) -> Message:
        """The next message; :class:`HandlerDiedError` if the handler hung up."""
        self.sock.settimeout(timeout)
        while not self._pending:
            try:
                data = self.sock.recv(65536)
            except TimeoutError as exc:
                raise HandlerDiedError(
                    f"the mapping's handler did not answer within {timeout:g} s"
                ) from exc
            except OSError as exc:
                raise HandlerDiedError(f"the mapping's handler process is gone ({exc})") from exc
            if not data:
                raise HandlerDiedError("the mapping's handler process is gone (channel closed)")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    def request(self, message: Message, timeout: float | None = None) -> Message:
        """Send ``message`` and return the reply."""
        self.send(message)
        return self.receive(timeout)
