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
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from swapio.errors import LocationError, UsageError

if TYPE_CHECKING:
    from swapio.area import CreateRequest

#: The URL parameter naming an area's page (slot) size, for every backend that takes one.
PAGE_SIZE_PARAM = "page_size"

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_MAX_PORT = 65535


def _empty_query() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Location:
    """A parsed swap-area URL.

    ``path`` is percent-decoded; ``query`` maps each key to its single value.

    For ``nfs://10.0.0.5:2049/export/swap%20a?timeo=2&durable=1``: ``url`` is the text as
    typed (use it in messages), ``scheme`` ``"nfs"`` (lower-cased), ``host`` ``"10.0.0.5"``
    (lower-cased, ``""`` for ``file:///path``; a seed list ``HOST:PORT,HOST:PORT`` is kept
    whole, user info dropped, and ``port`` is then ``None``), ``port`` ``2049`` (``None`` if
    absent), ``path`` ``"/export/swap a"``, ``query`` the read-only mapping
    ``{"timeo": "2", "durable": "1"}``.  A backend calls :meth:`check_query` with the keys it
    accepts first, then reads values with :meth:`query_bool` / :meth:`query_int`; each raises
    :class:`~swapio.errors.LocationError` naming the URL and the key.  See "The area's
    location" in docs/plugin-authors.md.
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
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1/x
            raise LocationError(f"swap-area URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if not _SCHEME.match(scheme):
            raise LocationError(f"swap-area URL {url!r}: invalid scheme {parts.scheme!r}")
        if parts.fragment:
            raise LocationError(f"swap-area URL {url!r}: fragments (#...) are not allowed")
        # A list of seed nodes (SCHEME://HOST:PORT,HOST:PORT, a cluster's) is kept whole in ``host``
        # (user info dropped) and ``port`` stays None: the owner plugin parses and checks it.
        seeds = parts.netloc.rpartition("@")[2]
        seed_list = "," in seeds
        try:
            port = None if seed_list else parts.port
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
            if "\0" in key or "\0" in value:
                raise LocationError(f"swap-area URL {url!r}: %00 (a NUL byte) in the query")
            query[key] = value
        path = unquote(parts.path)
        if "\0" in path:
            # no file system, export or key takes a NUL: refuse it here, for every backend
            raise LocationError(f"swap-area URL {url!r}: %00 (a NUL byte) in the path")
        return cls(
            url=url,
            scheme=scheme,
            host=seeds.lower() if seed_list else (parts.hostname or ""),
            port=port,
            path=path,
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


def url_page_size(location: Location) -> int | None:
    """The page size the URL names (``?page_size=N``), checked; ``None`` if it names none.

    Raises :class:`~swapio.errors.LocationError` for a non-integer and
    :class:`~swapio.errors.PageSizeError` for a size that is not a power of two in
    [512, 1 MiB].
    """
    from swapio.area import check_page_size  # noqa: PLC0415 - swapio.area imports this module

    size = location.query_int(PAGE_SIZE_PARAM, None, minimum=1)
    return None if size is None else check_page_size(size)


def area_page_size(location: Location, create: CreateRequest | None) -> int:
    """The page size of the area at ``location``: the one rule every backend follows.

    * **Opening** an existing store (``create is None``): the URL's ``page_size``, else
      :data:`~swapio.area.DEFAULT_PAGE_SIZE` (4096).  A headerless store (a file, an NFS
      file, a flashlog swap file) cannot tell its own page size; the URL is the only record.
    * **Creating** (``create`` given): ``create.page_size``.  A URL that *also* names a
      ``page_size`` must name the same one, else :class:`~swapio.errors.UsageError` naming
      both — never one silently winning, because the area would later be reopened (from the
      same URL) with the other size.

    The result is always a power of two in [512, 1 MiB] (``CreateRequest`` checks its own;
    the URL's is checked here).  Front ends that build a :class:`~swapio.area.CreateRequest`
    from a URL the user typed should take the size from :func:`url_page_size` when the user
    gave none, so ``swapio create 'file:///x?page_size=8192' --pages 4`` just works.
    """
    from swapio.area import DEFAULT_PAGE_SIZE  # noqa: PLC0415 - swapio.area imports this module

    named = url_page_size(location)
    if create is None:
        return DEFAULT_PAGE_SIZE if named is None else named
    if named is not None and named != create.page_size:
        raise UsageError(
            f"{location.url}: page size {create.page_size} asked for the new area differs "
            f"from the URL's {PAGE_SIZE_PARAM}={named}"
        )
    return create.page_size
