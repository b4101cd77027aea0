"""How the page server answers errors: one mapping from exceptions to HTTP statuses and
JSON error codes (``docs/http.md``, "Resources"), used by aiohttp's handlers and the
``/io`` fast lane alike, with store locations redacted from the messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaInactiveError,
    AreaNotFoundError,
    BackendIOError,
    CapabilityError,
    MemoryPressureError,
    PageSizeError,
    SlotRangeError,
    SwapioError,
    UsageError,
)

from ._api import ErrorBody
from ._budget import InflightLimitError
from ._wire import FrameError

if TYPE_CHECKING:
    from .server import ServerState


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code, message)


def check_body_length(length: int, limit: int) -> None:
    """413 for an ``/io`` body over the server's limit (one frame's pages, every header),
    before any of it is read: the same answer from the aiohttp handler and the fast lane."""
    if length > limit:
        raise HTTPError(
            413, "too-large", f"frame of {length} bytes exceeds this server's limit {limit}"
        )


STATUS_BY_ERROR: Final[tuple[tuple[type[Exception], int, str], ...]] = (
    (FrameError, 400, "bad-frame"),
    (AreaNotFoundError, 404, "not-found"),
    (AreaExistsError, 409, "exists"),
    (SlotRangeError, 416, "slot-range"),
    (PageSizeError, 400, "page-size"),
    (CapabilityError, 400, "capability"),
    (AreaInactiveError, 503, "inactive"),
    (MemoryPressureError, 503, "busy"),
    (UsageError, 400, "bad-request"),
    (AreaError, 400, "area"),
    (BackendIOError, 502, "backend-io"),
    (SwapioError, 500, "swapio"),
)


def answer_for(
    exc: BaseException, state: ServerState, owner: str, name: str | None
) -> tuple[int, str, str] | None:
    """``(status, code, message)`` answering ``exc``, or None for an unexpected error.

    The one place errors become HTTP answers (aiohttp's handlers and the lane alike); store
    locations are redacted from the message (:func:`redacted`).
    """
    if isinstance(exc, HTTPError):
        return exc.status, exc.body.code, exc.body.message
    if isinstance(exc, FrameError):
        return exc.status_hint, exc.code, str(exc)
    if isinstance(exc, InflightLimitError):
        return 429, "too-much-in-flight", str(exc)
    if isinstance(exc, SwapioError):
        for kind, status, code in STATUS_BY_ERROR:
            if isinstance(exc, kind):
                return status, code, redacted(state, owner, name, str(exc))
    return None


def redacted(state: ServerState, owner: str, name: str | None, message: str) -> str:
    """``message`` without the store location of the area ``name`` (nor its path).

    Errors raised by the store name its location (``file:///var/lib/...``); a client is told
    about its area by name, and the server's layout stays private (it is logged instead).
    """
    if name is None:
        return message
    try:
        location = state.config.location(owner, name)
    except (KeyError, IndexError, ValueError):
        return message
    path = urlsplit(location).path
    for secret in (location, unquote(path), path):
        if len(secret) > 1:
            message = message.replace(secret, f"<store of area {name!r}>")
    return message
