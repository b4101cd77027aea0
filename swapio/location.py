"""Swap-area locations: URLs such as ``file:///var/tmp/swap`` or ``nfs://host/export/f``.

A :class:`Location` is the parsed, immutable form of the URL a user types.  Parsing is strict:
a scheme is required, a port must be a number in range, and query keys may not repeat, so a
typo is an error instead of a silently different area.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, unquote, urlsplit

from swapio.errors import LocationError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_MAX_PORT = 65535


def _empty_query() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Location:
    """A parsed swap-area URL.

    ``path`` is percent-decoded; ``query`` maps each key to its single value.
    """

    url: str
    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = field(default_factory=_empty_query)

    @classmethod
    def parse(cls, url: str) -> Location:
        """Parse ``url``; raise :class:`LocationError` naming what is wrong."""
        if not isinstance(url, str) or not url:
            raise LocationError("empty swap-area URL; expected SCHEME://[HOST]/PATH")
        if any(ord(c) < 0x20 for c in url):
            raise LocationError(f"swap-area URL {url!r} contains control characters")
        if "://" not in url:
            raise LocationError(
                f"swap-area URL {url!r} has no scheme; expected SCHEME://..., "
                "e.g. file:///var/tmp/swapio.swap"
            )
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if not _SCHEME.match(scheme):
            raise LocationError(f"swap-area URL {url!r}: invalid scheme {parts.scheme!r}")
        if parts.fragment:
            raise LocationError(f"swap-area URL {url!r}: fragments (#...) are not allowed")
        try:
            port = parts.port
        except ValueError as exc:
            raise LocationError(f"swap-area URL {url!r}: invalid port ({exc})") from None
        if port is not None and not 0 < port <= _MAX_PORT:
            raise LocationError(f"swap-area URL {url!r}: port {port} out of range 1..65535")
        query: dict[str, str] = {}
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as exc:
            raise LocationError(f"swap-area URL {url!r}: malformed query ({exc})") from None
        for key, value in pairs:
            if key in query:
                raise LocationError(f"swap-area URL {url!r}: query key {key!r} given twice")
            query[key] = value
        return cls(
            url=url,
            scheme=scheme,
            host=parts.hostname or "",
            port=port,
            path=unquote(parts.path),
            query=MappingProxyType(query),
        )

    def query_int(self, key: str, default: int | None = None, *, minimum: int = 0) -> int | None:
        """Return query parameter ``key`` as an int >= ``minimum`` (or ``default`` if absent)."""
        raw = self.query.get(key)
        if raw is None:
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            raise LocationError(
                f"swap-area URL {self.url!r}: {key}={raw!r} is not an integer"
            ) from None
        if value < minimum:
            raise LocationError(f"swap-area URL {self.url!r}: {key}={value} is below {minimum}")
        return value

    def query_bool(self, key: str, default: bool = False) -> bool:
        """Return query parameter ``key`` as a boolean (1/0, true/false, yes/no, on/off)."""
        raw = self.query.get(key)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on", ""}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise LocationError(f"swap-area URL {self.url!r}: {key}={raw!r} is not a boolean")

    def check_query(self, allowed: set[str] | frozenset[str]) -> None:
        """Raise :class:`LocationError` if the URL carries a query key not in ``allowed``."""
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            expected = ", ".join(sorted(allowed)) or "none"
            raise LocationError(
                f"swap-area URL {self.url!r}: unknown parameter(s) {', '.join(unknown)} "
                f"(expected: {expected})"
            )

    def __str__(self) -> str:
        return self.url
