"""The page server's HTTP resources and JSON documents, shared by server and client.

Sans-I/O: names, validation, and the conversion between records and JSON bodies.  The
resource layout is documented in ``docs/http.md`` ("Resources").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from swapio.errors import RemoteProtocolError, UsageError

AREAS_PREFIX: Final = "/areas/"
_AREA_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_area_name(name: str) -> str:
    """Return ``name`` if it is a valid area name (1-64 of ``[A-Za-z0-9._-]``, no leading dot)."""
    if not _AREA_NAME.fullmatch(name):  # fullmatch: "$" would accept a trailing newline
        raise UsageError(
            f"area name {name!r} is invalid: expected 1-64 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class AreaDescription:
    """What the server reports about an area (``GET /areas/NAME``)."""

    name: str
    pages: int
    page_size: int
    durable: bool
    discard: bool
    max_frame_pages: int
    backend: str
    #: Frames one request may carry (1 for servers that predate coalescing).
    max_frames: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pages": self.pages,
            "page_size": self.page_size,
            "durable": self.durable,
            "discard": self.discard,
            "max_frame_pages": self.max_frame_pages,
            "backend": self.backend,
            "max_frames": self.max_frames,
        }

    @classmethod
    def from_json(cls, doc: object) -> AreaDescription:
        """Decode a server's description; a malformed one is the server's fault."""
        if not isinstance(doc, dict):
            raise RemoteProtocolError(f"area description is {type(doc).__name__}, expected object")
        try:
            result = cls(
                name=_typed(doc, "name", str),
                pages=_typed(doc, "pages", int),
                page_size=_typed(doc, "page_size", int),
                durable=_typed(doc, "durable", bool),
                discard=_typed(doc, "discard", bool),
                max_frame_pages=_typed(doc, "max_frame_pages", int),
                backend=_typed(doc, "backend", str),
                max_frames=_typed(doc, "max_frames", int) if "max_frames" in doc else 1,
            )
        except KeyError as exc:
            raise RemoteProtocolError(f"area description lacks {exc.args[0]!r}") from None
        if min(result.pages, result.page_size, result.max_frame_pages, result.max_frames) < 1:
            raise RemoteProtocolError(f"area description has impossible geometry: {doc}")
        return result


def _typed(doc: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RemoteProtocolError(
            f"area description field {key!r} is {type(value).__name__}, expected {kind.__name__}"
        )
    return value


@dataclass(frozen=True)
class CreateBody:
    """Body of ``PUT /areas/NAME``: create when ``pages`` is given, else attach."""

    pages: int | None = None
    page_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        if self.pages is None:
            return {}
        return {"pages": self.pages, "page_size": self.page_size}

    @classmethod
    def from_json(cls, doc: object) -> CreateBody:
        """Decode a client's body; raise :class:`UsageError` (a 400) when malformed."""
        if doc is None or doc == {}:
            return cls()
        if not isinstance(doc, dict):
            raise UsageError("activation body must be a JSON object")
        unknown = sorted(set(doc) - {"pages", "page_size"})
        if unknown:
            raise UsageError(f"unknown field(s) {', '.join(unknown)}; expected pages, page_size")
        pages = doc.get("pages")
        page_size = doc.get("page_size", 4096)
        for key, value in (("pages", pages), ("page_size", page_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{key} must be a positive integer, got {value!r}")
        return cls(pages=pages, page_size=page_size)


@dataclass(frozen=True)
class ErrorBody:
    """The JSON body of every 4xx/5xx answer: a short code and a sentence."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}

    @classmethod
    def from_json(cls, doc: object, status: int) -> ErrorBody:
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return cls(code=str(doc.get("error", status)), message=doc["message"])
        return cls(code=str(status), message=f"HTTP {status} without a swapio error body")
