"""How a mirror is named: a ``mirror://`` URL with the legs in its query or in a TOML file.

Two equivalent forms (docs/bitmap-and-mirror.md):

* ``mirror://NAME?bitmap=B&leg0=L0&leg1=L1[&chunk_size=N][&daemon=0][&resync=0]`` — every
  value a path or a percent-encoded swapio URL; legs are numbered from 0 without gaps.
* ``mirror:///abs/path/NAME.toml`` — a TOML file with ``bitmap = "..."``,
  ``legs = ["...", "..."]`` and optionally ``chunk_size``, ``daemon``, ``resync``; relative
  paths in it are relative to the file's directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from swapio.area import check_page_size
from swapio.errors import LocationError
from swapio.location import Location, url_page_size
from swapio_mdraid._format import check_chunk_size
from swapio_mdraid._locate import is_url
from swapio_mdraid.errors import BitmapParameterError

DEFAULT_CHUNK_SIZE = 64 * 1024
QUERY_KEYS = frozenset({"bitmap", "chunk_size", "daemon", "resync", "page_size"})
FILE_KEYS = frozenset({"bitmap", "legs", "chunk_size", "daemon", "resync", "page_size"})


@dataclass(frozen=True)
class MirrorConfig:
    """A mirror's parts: the bitmap's location and two or more legs (paths or URLs)."""

    name: str
    bitmap: str
    legs: tuple[str, ...]
    chunk_size: int = DEFAULT_CHUNK_SIZE
    daemon: bool = True
    resync: bool = True
    #: Page size of legs named by a plain path (``swapio.location.area_page_size``'s rule:
    #: a headerless file cannot tell its own; None means 4096, or the create request's).
    page_size: int | None = None

    def __post_init__(self) -> None:
        if len(self.legs) < 2:
            raise LocationError(f"mirror {self.name!r} needs at least 2 legs, got {len(self.legs)}")
        if len(set(self.legs)) != len(self.legs):
            raise LocationError(f"mirror {self.name!r} names the same leg twice")
        if self.bitmap in self.legs:
            raise LocationError(f"mirror {self.name!r}: the bitmap cannot be one of the legs")
        try:
            check_chunk_size(self.chunk_size)
        except BitmapParameterError as exc:
            raise LocationError(f"mirror {self.name!r}: {exc}") from None

    @classmethod
    def from_location(cls, loc: Location) -> MirrorConfig:
        if "bitmap" in loc.query:
            return cls._from_query(loc)
        if loc.query:
            raise LocationError(
                f"{loc.url!r}: a mirror URL either carries bitmap=...&leg0=...&leg1=... or "
                "names a TOML file (mirror:///path/to/mirror.toml) without a query"
            )
        if not loc.path:
            raise LocationError(f"{loc.url!r}: no bitmap/legs in the query and no config file")
        return cls.from_file(loc.path)

    @classmethod
    def _from_query(cls, loc: Location) -> MirrorConfig:
        legs: list[str] = []
        while f"leg{len(legs)}" in loc.query:
            legs.append(loc.query[f"leg{len(legs)}"])
        extra = set(loc.query) - QUERY_KEYS - {f"leg{i}" for i in range(len(legs))}
        if extra:
            raise LocationError(
                f"{loc.url!r}: unknown mirror parameter(s) {', '.join(sorted(extra))} "
                "(expected bitmap, leg0, leg1, ..., chunk_size, daemon, resync, page_size; legs "
                "numbered without gaps)"
            )
        chunk = loc.query_int("chunk_size", DEFAULT_CHUNK_SIZE, minimum=1)
        assert chunk is not None
        return cls(
            name=(loc.host + loc.path).strip("/") or "mirror",
            bitmap=loc.query["bitmap"],
            legs=tuple(legs),
            chunk_size=chunk,
            daemon=loc.query_bool("daemon", True),
            resync=loc.query_bool("resync", True),
            page_size=url_page_size(loc),
        )

    @classmethod
    def from_file(cls, path: str) -> MirrorConfig:
        import tomllib  # noqa: PLC0415 - only a config file needs the TOML parser (2 ms)

        try:
            with open(path, "rb") as fh:
                data: dict[str, Any] = tomllib.load(fh)
        except FileNotFoundError:
            raise LocationError(f"mirror config {path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise LocationError(
                f"mirror config {path}: not a TOML file (expected UTF-8 text, found byte "
                f"0x{exc.object[exc.start]:02x} at offset {exc.start})"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise LocationError(f"mirror config {path}: cannot read it: {exc}") from None
        unknown = set(data) - FILE_KEYS
        if unknown:
            raise LocationError(
                f"mirror config {path}: unknown key(s) {', '.join(sorted(unknown))} "
                f"(expected {', '.join(sorted(FILE_KEYS))})"
            )
        base = os.path.dirname(os.path.abspath(path))
        bitmap = data.get("bitmap")
        legs = data.get("legs")
        if not isinstance(bitmap, str) or not isinstance(legs, list):
            raise LocationError(
                f'mirror config {path}: needs bitmap = "PATH or URL" and legs = ["...", ...]'
            )
        if not all(isinstance(leg, str) for leg in legs):
            raise LocationError(f"mirror config {path}: every leg must be a string")
        chunk = data.get("chunk_size", DEFAULT_CHUNK_SIZE)
        daemon = data.get("daemon", True)
        resync = data.get("resync", True)
        page_size = data.get("page_size")
        if (
            not isinstance(chunk, int)
            or not isinstance(daemon, bool)
            or not isinstance(resync, bool)
            or not isinstance(page_size, int | None)
        ):
            raise LocationError(
                f"mirror config {path}: chunk_size and page_size are integers, daemon and "
                "resync booleans"
            )
        if page_size is not None:
            check_page_size(page_size)
        return cls(
            name=os.path.splitext(os.path.basename(path))[0],
            bitmap=_rebase(bitmap, base),
            legs=tuple(_rebase(leg, base) for leg in legs),
            chunk_size=chunk,
            daemon=daemon,
            resync=resync,
            page_size=page_size,
        )


def _rebase(text: str, base: str) -> str:
    if is_url(text) or os.path.isabs(text):
        return text
    return os.path.join(base, text)
