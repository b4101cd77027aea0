"""Sans-I/O check of an HTTP/1.1 request head for the page server's fast lane.

The fast lane (:mod:`swapio_http._lane`) serves exactly one kind of request itself: a
well-formed ``POST /areas/NAME/io HTTP/1.1`` with one ``Content-Length`` (RFC 9112 §3, §5,
§6.2).  :func:`parse_io_head` returns what the lane needs from such a head, and ``None`` for
every other head — another method or path, HTTP/1.0, ``Transfer-Encoding``, ``Expect``,
``Upgrade``, a repeated ``Content-Length`` or ``Authorization``, obsolete line folding
(RFC 9112 §5.2), a field name outside ``token`` or a value outside visible ASCII (RFC 9110
§5.1, §5.5) — which the lane then hands, unread, to aiohttp's full HTTP server.  So this
parser never has to answer a malformed head: it only has to recognise the plain one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Longest head the lane looks at; a longer one goes to aiohttp (which answers 400 or 431).
MAX_HEAD: Final = 8192
#: What every lane request starts with (a head that cannot start so is handed over at once).
PREFIX: Final = b"POST /"

_REQUEST_LINE: Final = re.compile(rb"POST /areas/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/io HTTP/1\.1")
#: ``field-name ":" OWS field-value OWS`` with a token name and a visible-ASCII value.
_FIELD: Final = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x21-\x7e]*(?:[ \t]+[\x21-\x7e]+)*)[ \t]*"
)
_DIGITS: Final = re.compile(rb"[0-9]{1,18}")
#: Fields that change how the message is framed or handled: not for the lane.
_NOT_PLAIN: Final = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"})


@dataclass(frozen=True, slots=True)
class IoHead:
    """The parts of a ``POST /areas/NAME/io`` head the page server acts on."""

    name: str
    content_length: int
    authorization: str | None
    #: ``Connection: close`` was asked for (RFC 9112 §9.6).
    close: bool


def parse_io_head(raw: bytes) -> IoHead | None:
    """``raw`` (a head without its final blank line) as an :class:`IoHead`, or ``None`` when
    the lane should not serve it (see the module docstring)."""
    lines = raw.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    length: int | None = None
    authorization: str | None = None
    close = False
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            return None  # folding, no colon, a bad name, control or non-ASCII bytes
        name, value = field.group(1).lower(), field.group(2)
        if name == b"content-length":
            if length is not None or _DIGITS.fullmatch(value) is None:
                return None
            length = int(value)
        elif name == b"authorization":
            if authorization is not None:
                return None
            authorization = value.decode("ascii")
        elif name == b"connection":
            options = {o.strip(b" \t").lower() for o in value.split(b",")}
            if b"upgrade" in options:
                return None
            close = close or b"close" in options
        elif name in _NOT_PLAIN:
            return None
    if length is None:
        return None
    return IoHead(match.group(1).decode("ascii"), length, authorization, close)
