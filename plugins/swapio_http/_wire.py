"""The page server's binary frames: sans-I/O encode and parse, with limits.

No sockets here (h11 style): bytes go in, frozen records come out, bytes to send come back.
The layout is specified in ``docs/http.md`` ("Frames"); every integer is big-endian
(network byte order, RFC 1700).  One request frame carries one operation over a run of
consecutive slots; a batch of many runs is many frames on concurrent connections.

Request frame (``REQUEST_HEADER`` then the pages of a SWAP_OUT)::

    magic "SWPQ" | version u8 | op u8 | flags u16 | page_size u32 | slot u64 | count u32
    | reserved u32 (zero) | count * page_size bytes (SWAP_OUT only)

Response frame (``RESPONSE_HEADER`` then the pages of a SWAP_IN)::

    magic "SWPR" | version u8 | op u8 | reserved u16 | page_size u32 | count u32
    | count * page_size bytes (SWAP_IN only)

Errors are not frames: they travel as HTTP 4xx/5xx with a JSON body (see ``docs/http.md``).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from swapio.errors import LocalProtocolError, RemoteProtocolError

REQUEST_MAGIC: Final = b"SWPQ"
RESPONSE_MAGIC: Final = b"SWPR"
VERSION: Final = 1
REQUEST_HEADER: Final = struct.Struct("!4sBBHIQII")
RESPONSE_HEADER: Final = struct.Struct("!4sBBHII")
CONTENT_TYPE: Final = "application/x-swapio-frame"
MIN_PAGE_SIZE: Final = 512
MAX_SLOT: Final = (1 << 64) - 1


class Op(enum.IntEnum):
    """Operation codes of a request frame."""

    SWAP_OUT = 1
    SWAP_IN = 2
    DISCARD = 3


class Flag(enum.IntFlag):
    """Request flags (u16)."""

    NONE = 0
    MEMALLOC = 1  # the client sent this from memalloc (reclaim) context


class FrameError(RemoteProtocolError):
    """A frame broke the wire format or a limit.

    ``status_hint`` is the HTTP status the server answers with (h11's
    ``error_status_hint``); ``code`` is the short machine-readable name in the JSON body.
    """

    def __init__(self, message: str, *, status_hint: int = 400, code: str = "bad-frame") -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.code = code


@dataclass(frozen=True)
class Limits:
    """What a server accepts in one frame; checked before any body byte is buffered."""

    max_pages: int = 256
    max_page_size: int = 1 << 16
    #: Frames one request body may carry (a client coalesces small concurrent frames).
    max_frames: int = 64

    def __post_init__(self) -> None:
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be >= 1, got {self.max_pages}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if not _is_page_size(self.max_page_size):
            raise ValueError(
                f"max_page_size must be a power of two >= 512, got {self.max_page_size}"
            )

    @property
    def max_frame_bytes(self) -> int:
        """Largest acceptable request frame, header included."""
        return REQUEST_HEADER.size + self.max_pages * self.max_page_size

    @property
    def max_request_bytes(self) -> int:
        """Largest acceptable request body: one frame's worth of pages, every frame's header."""
        return self.max_frame_bytes + (self.max_frames - 1) * REQUEST_HEADER.size


@dataclass(frozen=True)
class RequestHeader:
    """A decoded request header: ``count`` slots from ``slot``, each ``page_size`` bytes."""

    op: Op
    slot: int
    count: int
    page_size: int
    flags: Flag = Flag.NONE

    @property
    def body_size(self) -> int:
        """Bytes of page data following the header."""
        return self.count * self.page_size if self.op is Op.SWAP_OUT else 0


@dataclass(frozen=True)
class Request:
    """A complete request frame; ``chunks`` hold the body (SWAP_OUT pages) as received.

    The chunks are views of the buffers the parser was fed, not copies: :meth:`pages` hands
    out a page as a view when it lies within one received chunk and copies only the pages
    that straddle two.
    """

    header: RequestHeader
    chunks: tuple[memoryview, ...] = ()
    #: Where the frame's pages start in the request body (frames of a stream follow each other).
    offset: int = REQUEST_HEADER.size

    def pages_of(self, body: memoryview) -> list[memoryview]:
        """The frame's pages as views of ``body``, the whole request body held contiguously."""
        size = self.header.page_size
        data = body[self.offset : self.offset + self.header.body_size]
        return [data[i : i + size] for i in range(0, data.nbytes, size)]

    @property
    def data(self) -> bytes:
        """The whole body as one ``bytes`` (a copy)."""
        return b"".join(self.chunks)

    def pages(self) -> list[memoryview]:
        """The body cut into ``page_size`` pages."""
        size = self.header.page_size
        out: list[memoryview] = []
        partial = bytearray()
        for chunk in self.chunks:
            pos, end = 0, chunk.nbytes
            if partial:
                take = min(size - len(partial), end)
                partial += chunk[:take]
                pos = take
                if len(partial) == size:
                    out.append(memoryview(bytes(partial)))
                    partial = bytearray()
            while end - pos >= size:
                out.append(chunk[pos : pos + size])
                pos += size
            if pos < end:
                partial += chunk[pos:]
        return out

    def page(self, index: int) -> memoryview:
        """The ``index``-th page of a SWAP_OUT body."""
        return self.pages()[index]


@dataclass(frozen=True)
class ResponseHeader:
    """A decoded response header."""

    op: Op
    count: int
    page_size: int

    @property
    def body_size(self) -> int:
        """Bytes of page data following the header."""
        return self.count * self.page_size if self.op is Op.SWAP_IN else 0


def _is_page_size(size: int) -> bool:
    return size >= MIN_PAGE_SIZE and size & (size - 1) == 0


# --- encoding ---------------------------------------------------------------------------


def encode_request_header(header: RequestHeader) -> bytes:
    """Encode a request header; raise :class:`LocalProtocolError` for impossible values."""
    if not _is_page_size(header.page_size) or header.page_size > 0xFFFFFFFF:
        raise LocalProtocolError(f"page size {header.page_size} is not a power of two >= 512")
    if not 0 <= header.slot <= MAX_SLOT:
        raise LocalProtocolError(f"slot {header.slot} does not fit in u64")
    if not 1 <= header.count <= 0xFFFFFFFF:
        raise LocalProtocolError(f"page count {header.count} must be 1..2**32-1")
    return REQUEST_HEADER.pack(
        REQUEST_MAGIC,
        VERSION,
        header.op,
        header.flags,
        header.page_size,
        header.slot,
        header.count,
        0,
    )


def pack_response_header_into(view: memoryview, op: Op, count: int, page_size: int) -> None:
    """Write the response header answering a checked request frame at the start of ``view``
    (the server's page path: ``count`` and ``page_size`` passed the frame's limits)."""
    RESPONSE_HEADER.pack_into(view, 0, RESPONSE_MAGIC, VERSION, op, 0, page_size, count)


def encode_response_header(header: ResponseHeader) -> bytes:
    """Encode a response header."""
    if not 0 <= header.count <= 0xFFFFFFFF:
        raise LocalProtocolError(f"page count {header.count} does not fit in u32")
    return RESPONSE_HEADER.pack(
        RESPONSE_MAGIC, VERSION, header.op, 0, header.page_size, header.count
    )


# --- request parsing (server side) --------------------------------------------------------


def parse_request_header(
    raw: bytes | bytearray | memoryview, limits: Limits, content_length: int | None = None
) -> RequestHeader:
    """Decode and check a request header against ``limits`` (and the HTTP Content-Length).

    Raises :class:`FrameError` with ``status_hint`` 400 (malformed), 413 (over a limit) or
    415 (unknown version).
    """
    if len(raw) != REQUEST_HEADER.size:
        raise FrameError(
            f"request header is {REQUEST_HEADER.size} bytes, got {len(raw)}", code="truncated"
        )
    magic, version, op_raw, flags_raw, page_size, slot, count, reserved = REQUEST_HEADER.unpack(raw)
    if magic != REQUEST_MAGIC:
        raise FrameError(f"bad magic: expected {REQUEST_MAGIC!r}, found {bytes(magic)!r}")
    if version != VERSION:
        raise FrameError(
            f"unsupported frame version {version} (this server speaks {VERSION})",
            status_hint=415,
            code="version",
        )
    try:
        op = Op(op_raw)
    except ValueError:
        valid = ", ".join(f"{o.value}={o.name}" for o in Op)
        raise FrameError(f"unknown op {op_raw} (expected one of {valid})") from None
    if flags_raw & ~int(Flag.MEMALLOC):
        raise FrameError(f"unknown flag bits {flags_raw:#06x} (only 0x0001 is defined)")
    if reserved != 0:
        raise FrameError(f"reserved field must be 0, found {reserved}")
    if not _is_page_size(page_size):
        raise FrameError(f"page size {page_size} is not a power of two >= {MIN_PAGE_SIZE}")
    if page_size > limits.max_page_size:
        raise FrameError(
            f"page size {page_size} exceeds this server's limit {limits.max_page_size}",
            status_hint=413,
            code="too-large",
        )
    if count == 0:
        raise FrameError("page count is 0; a frame addresses at least one slot")
    if count > limits.max_pages:
        raise FrameError(
            f"{count} pages in one frame exceeds this server's limit {limits.max_pages}",
            status_hint=413,
            code="too-large",
        )
    if slot + count - 1 > MAX_SLOT:
        raise FrameError(f"slots {slot}+{count} overflow u64")
    header = RequestHeader(
        op=op, slot=slot, count=count, page_size=page_size, flags=Flag(flags_raw)
    )
    if content_length is not None:
        expected = REQUEST_HEADER.size + header.body_size
        if content_length != expected:
            raise FrameError(
                f"Content-Length {content_length} does not match the frame: {op.name} of "
                f"{count} x {page_size}-byte pages is {expected} bytes",
                code="length-mismatch",
            )
    return header


class RequestParser:
    """Incremental request-frame parser: feed bytes, then ask for the request.

    ``receive_data(b"")`` is end of input.  Body bytes are kept as views of the fed buffers
    (which must not change afterwards), only once the header passed the limits: an oversized
    request costs nothing but its header.
    """

    def __init__(self, limits: Limits, content_length: int | None = None) -> None:
        self._limits = limits
        self._content_length = content_length
        self._head = bytearray()
        self._header: RequestHeader | None = None
        self._chunks: list[memoryview] = []
        self._filled = 0
        self._eof = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed received bytes; an empty ``data`` marks end of input."""
        if self._eof:
            raise FrameError("data after end of input")
        if not data:
            self._eof = True
            return
        view = memoryview(data)
        if self._header is None:
            need = REQUEST_HEADER.size - len(self._head)
            self._head += view[:need]
            view = view[need:]
            if len(self._head) == REQUEST_HEADER.size:
                self._header = parse_request_header(self._head, self._limits, self._content_length)
        if self._header is not None and view.nbytes:
            room = self._header.body_size - self._filled
            if view.nbytes > room:
                raise FrameError(
                    f"{view.nbytes - room} bytes after the end of the frame "
                    f"(body is {self._header.body_size} bytes)",
                    code="length-mismatch",
                )
            self._chunks.append(view)  # no copy: the caller's buffers must stay unchanged
            self._filled += view.nbytes

    @property
    def header(self) -> RequestHeader | None:
        """The header once its bytes have arrived and passed the checks."""
        return self._header

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing from this frame (header first, then the body)."""
        if self._header is None:
            return REQUEST_HEADER.size - len(self._head)
        return self._header.body_size - self._filled

    @property
    def started(self) -> bool:
        """True once any byte of this frame has arrived."""
        return bool(self._head)

    def result(self) -> Request:
        """The complete request; call after end of input.  Raises on a truncated frame."""
        if not self._eof:
            raise LocalProtocolError("result() before end of input")
        if self._header is None:
            raise FrameError(
                f"truncated frame: {len(self._head)} of {REQUEST_HEADER.size} header bytes",
                code="truncated",
            )
        if self._filled != self._header.body_size:
            raise FrameError(
                f"truncated frame: {self._filled} of {self._header.body_size} body bytes "
                f"({self._header.count} pages of {self._header.page_size})",
                code="truncated",
            )
        return Request(self._header, tuple(self._chunks))


class RequestStreamParser:
    """Incremental parser of a request body holding one or more consecutive frames.

    The body's ``Content-Length`` must end exactly at a frame boundary, the frames' pages
    together may not exceed one frame's limit (``max_pages``), and there may be at most
    ``max_frames`` frames; each is checked as soon as its header arrives, before its body is
    buffered.  ``receive_data(b"")`` is end of input; :meth:`result` returns every frame.
    """

    def __init__(self, limits: Limits, content_length: int | None = None) -> None:
        self._limits = limits
        self._content_length = content_length
        self._frames: list[Request] = []
        self._current = RequestParser(limits)
        self._offset = 0  # body bytes of the frames already complete
        self._pages = 0
        self._checked = False
        self._eof = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed received bytes; an empty ``data`` marks end of input."""
        if self._eof:
            raise FrameError("data after end of input")
        if not data:
            self._eof = True
            return
        view = memoryview(data)
        while view.nbytes:
            need = self._current.bytes_needed
            self._current.receive_data(view[:need])
            view = view[need:]
            header = self._current.header
            if header is None:
                continue
            if not self._checked:
                self._check(header)
            if self._current.bytes_needed == 0:
                self._current.receive_data(b"")
                frame = self._current.result()
                offset = self._offset + REQUEST_HEADER.size
                self._frames.append(Request(frame.header, frame.chunks, offset))
                self._offset = offset + header.body_size
                self._current = RequestParser(self._limits)
                self._checked = False

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing from the frame being received (its header first, then its
        body): feeding fewer cannot complete a frame nor start the next one's header."""
        return self._current.bytes_needed

    @property
    def first_header(self) -> RequestHeader | None:
        """The first frame's header, once its bytes have arrived and passed the checks."""
        return self._frames[0].header if self._frames else self._current.header

    def _check(self, header: RequestHeader) -> None:
        self._checked = True
        index = len(self._frames) + 1
        if index > self._limits.max_frames:
            raise FrameError(
                f"more than {self._limits.max_frames} frames in one request",
                status_hint=413,
                code="too-large",
            )
        self._pages += header.count
        if self._pages > self._limits.max_pages:
            raise FrameError(
                f"{self._pages} pages in one request exceeds this server's limit "
                f"{self._limits.max_pages}",
                status_hint=413,
                code="too-large",
            )
        end = self._offset + REQUEST_HEADER.size + header.body_size
        length = self._content_length
        if length is not None and end > length:
            raise FrameError(
                f"Content-Length {length} does not match the frame: {header.op.name} of "
                f"{header.count} x {header.page_size}-byte pages ends at byte {end}",
                code="length-mismatch",
            )

    def result(self) -> list[Request]:
        """Every frame of the body; call after end of input.  Raises on a truncated frame."""
        if not self._eof:
            raise LocalProtocolError("result() before end of input")
        if self._current.started:
            self._current.receive_data(b"")
            self._current.result()  # raises the precise truncation error
        if not self._frames:
            raise FrameError("empty request body; expected at least one frame", code="truncated")
        return list(self._frames)


def parse_request(data: bytes | bytearray | memoryview, limits: Limits) -> Request:
    """Parse one complete request frame held in ``data``."""
    parser = RequestParser(limits, len(data))
    parser.receive_data(data)
    parser.receive_data(b"")
    return parser.result()


# --- response parsing (client side) -------------------------------------------------------


def parse_response_header(
    raw: bytes | bytearray | memoryview, op: Op, count: int, page_size: int
) -> ResponseHeader:
    """Decode a response header and check it answers the request (op, count, page size)."""
    check_response_header(raw, op, count, page_size)
    return ResponseHeader(op=op, count=count, page_size=page_size)


def check_response_header(
    raw: bytes | bytearray | memoryview, op: Op, count: int, page_size: int
) -> None:
    """:func:`parse_response_header` without building the record (the client's page path)."""
    if len(raw) != RESPONSE_HEADER.size:
        raise FrameError(
            f"response header is {RESPONSE_HEADER.size} bytes, got {len(raw)}", code="truncated"
        )
    magic, version, op_raw, reserved, got_size, got_count = RESPONSE_HEADER.unpack(raw)
    if magic != RESPONSE_MAGIC:
        raise FrameError(f"bad response magic: expected {RESPONSE_MAGIC!r}, found {magic!r}")
    if version != VERSION:
        raise FrameError(f"unsupported response version {version}", code="version")
    if reserved != 0:
        raise FrameError(f"response reserved field must be 0, found {reserved}")
    if op_raw != op:
        raise FrameError(f"response is for op {op_raw}, request was {op.name}")
    if got_count != count or got_size != page_size:
        raise FrameError(
            f"response covers {got_count} x {got_size} bytes, request was {count} x {page_size}",
            code="length-mismatch",
        )
