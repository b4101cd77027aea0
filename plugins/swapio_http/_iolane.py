"""The ``/io`` fast lane's server side: serving a recognised ``POST /areas/NAME/io``.

:class:`swapio_http._lane.LaneProtocol` recognises the head and calls :meth:`IoLane.accept`;
the request is then served as ``server.area_io`` serves it behind aiohttp — the same checks
in the same order, the same buffers of the token's budget, the same answers — except that
the body is received by the transport straight into its pool buffer and the answer is
written without aiohttp's response machinery (RFC 9112 §4, §6.2).
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

from swapio.memalloc import memalloc

from ._answers import HTTPError, answer_for, check_body_length
from ._api import ErrorBody
from ._frames import check_frame, response_size, run_frames, wants_memalloc
from ._head import IoHead
from ._lane import LaneProtocol
from ._wire import (
    CONTENT_TYPE,
    REQUEST_HEADER,
    Request,
    RequestStreamParser,
    parse_request_header,
)

if TYPE_CHECKING:
    from .server import ServerState

log = logging.getLogger("swapio.http.server")

_OK_HEAD: Final = b"HTTP/1.1 200 OK\r\nContent-Type: " + CONTENT_TYPE.encode() + b"\r\n"
_UNAUTHORIZED: Final = b'WWW-Authenticate: Bearer realm="swapio"\r\n'
#: Answers this small are sent in one write with their head (one segment, one syscall).
_SMALL_ANSWER: Final = 4096


def answer_head(status: int, length: int, close: bool) -> bytes:
    """The lane's HTTP/1.1 response head (RFC 9112 §4, §6.2): 200 carries frames, any other
    status a JSON error body (``WWW-Authenticate`` with 401, RFC 6750 §3)."""
    if status == 200:
        head = _OK_HEAD
    else:
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
        ).encode() + (_UNAUTHORIZED if status == 401 else b"")
    if close:
        head += b"Connection: close\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % length


def nothing_to_check(end: int) -> None:
    """The lane's receive callback for a body whose only frame header was checked."""


async def receive_frames(
    conn: LaneProtocol, parser: RequestStreamParser, view: memoryview, filled: int, fed: int
) -> list[Request]:
    """Receive a body of several frames into ``view`` (``filled`` bytes already there,
    ``fed`` of them seen by ``parser``); every frame header is checked as it arrives: the
    parser is fed once the bytes reach the end of the frame being received."""
    length = view.nbytes

    def feed(end: int) -> None:
        nonlocal fed
        if end > fed and (end - fed >= parser.bytes_needed or end == length):
            parser.receive_data(view[fed:end])
            fed = end

    feed(filled)
    await conn.receive_into(view, filled, feed)
    if fed < length:
        parser.receive_data(view[fed:length])
    parser.receive_data(b"")
    return parser.result()


class IoLane:
    """The fast lane's server side: ``POST /areas/NAME/io`` on a lane connection.

    :class:`swapio_http._lane.LaneProtocol` recognises the head and calls :meth:`accept`;
    the request is then served as :func:`area_io` serves it behind aiohttp — the same
    checks in the same order, the same buffers of the token's budget, the same answers —
    except that the body is received by the transport straight into its pool buffer and
    the answer is written without aiohttp's response machinery.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._tasks: set[asyncio.Task[None]] = set()

    def accept(self, conn: LaneProtocol, head: IoHead) -> None:
        task = conn.loop.create_task(self._serve(conn, head))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: LaneProtocol, head: IoHead) -> None:
        state = self.state
        owner = state.config.tokens.authenticate(head.authorization)
        try:
            if owner is None:
                raise HTTPError(401, "unauthorized", "missing or wrong bearer token")
            await self._io(conn, head, owner)
            conn.finish(head.close)
            return
        except ConnectionError:
            log.info(
                "POST /areas/%s/io: connection lost before the request was complete", head.name
            )
            conn.close()
            return
        except Exception as exc:
            answer = answer_for(exc, state, owner or "", head.name)
            if answer is None:
                log.exception("POST /areas/%s/io failed", head.name)
                answer = (500, "internal", "internal server error (see the server's log)")
            elif answer[0] >= 500:
                log.warning("POST /areas/%s/io: %s", head.name, exc)
        status, code, message = answer
        body = json.dumps(ErrorBody(code, message).to_json()).encode()
        close = head.close or conn.unread
        conn.write(answer_head(status, len(body), close) + body)
        conn.finish(close)

    async def _io(self, conn: LaneProtocol, head: IoHead, owner: str) -> None:
        state = self.state
        area = state.areas.get((owner, head.name))
        if area is None:
            raise HTTPError(404, "not-found", f"no active area {head.name!r} for this token")
        limits = state.config.limits
        length = head.content_length
        check_body_length(length, limits.max_request_bytes)
        state.io_begin()
        try:
            prefix = min(length, REQUEST_HEADER.size)
            await conn.read_prefix(prefix)
            first = None
            if prefix == REQUEST_HEADER.size:
                first = parse_request_header(conn.peek(prefix), limits)
            parser = None
            if first is None or REQUEST_HEADER.size + first.body_size != length:
                # several frames (or a malformed body): the stream parser checks each header
                parser = RequestStreamParser(limits, length)
                if prefix:
                    parser.receive_data(conn.peek(prefix))
            grant = state.budget.grant(owner, wants_memalloc(first))
            try:
                # not zeroed: the client's bytes fill all of it (the answer's buffer is zeroed,
                # so nothing of an earlier request can reach a client through a store)
                body = await grant.alloc(max(length, 1), zero=False)
                view = body.view[:length]
                filled = conn.take_into(view)
                if parser is None:
                    # one frame that ends exactly at Content-Length: its header, the only
                    # one, passed the checks; the body only has to arrive
                    await conn.receive_into(view, filled, nothing_to_check)
                    assert first is not None
                    frames = [Request(first, (), REQUEST_HEADER.size)]
                else:
                    frames = await receive_frames(conn, parser, view, filled, prefix)
                for frame in frames:
                    check_frame(area, frame.header)
                out = await grant.alloc(sum(response_size(f.header) for f in frames))
                if grant.memalloc:
                    with memalloc():
                        await run_frames(area, frames, view, out.view)
                else:
                    await run_frames(area, frames, view, out.view)
                answer = answer_head(200, out.nbytes, head.close)
                if out.nbytes <= _SMALL_ANSWER:
                    conn.write(answer + out.view)
                else:
                    conn.write(answer)
                    conn.write(out.view)
            finally:
                grant.release()
        finally:
            state.io_end()
