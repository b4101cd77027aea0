"""``nfs://`` URLs in libnfs's conventions, so one URL works with swapio and ``nfs-cp``.

``nfs://HOST[:PORT]/EXPORT/DIR/FILE?nfsport=N&mountport=N&uid=N&gid=N&version=3``: as libnfs
does, the directory part of the path is what is mounted (the export, or a directory inside
it) and the last component is the file.  ``PORT`` in the authority is read as the NFS port
(libnfs itself rejects it; shared URLs should use ``nfsport``); a port not given is asked of
the port mapper on port 111.  libnfs ignores parameters it does not know, so swapio's own do
not break ``nfs-cp``.  swapio adds ``page_size`` (slot size of a headerless swap file,
default 4096) and ``timeo`` / ``retrans`` (seconds before the first retransmission and
retransmissions before failing, as in nfs(5)) and ``nconnect`` (TCP connections per area,
1..16, calls spread round robin, as the Linux mount option).
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass

from swapio.area import DEFAULT_PAGE_SIZE, check_page_size
from swapio.location import Location
from swapio_nfs._errors import NfsUrlError

PARAMS = frozenset(
    {"nfsport", "mountport", "uid", "gid", "version", "page_size", "timeo", "retrans", "nconnect"}
)
_MAX_PORT = 65535
MAX_NCONNECT = 16


@dataclass(frozen=True)
class NfsUrl:
    """The parts of an ``nfs://`` URL swapio uses."""

    host: str
    mount_path: str
    file_name: str
    nfsport: int | None = None
    mountport: int | None = None
    uid: int = 0
    gid: int = 0
    page_size: int = DEFAULT_PAGE_SIZE
    timeo: float | None = None
    retrans: int | None = None
    nconnect: int = 1

    @property
    def path(self) -> str:
        """Full path of the file on the server."""
        return posixpath.join(self.mount_path, self.file_name)


def _int(loc: Location, key: str, low: int, high: int) -> int | None:
    raw = loc.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise NfsUrlError(f"{loc.url!r}: {key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise NfsUrlError(f"{loc.url!r}: {key} must be in {low}..{high}, got {value}")
    return value


def parse_nfs_url(location: Location | str) -> NfsUrl:
    """Validate an ``nfs://`` location; raise :class:`NfsUrlError` saying what is wrong."""
    loc = Location.parse(location) if isinstance(location, str) else location
    if loc.scheme != "nfs":
        raise NfsUrlError(f"{loc.url!r}: expected an nfs:// URL, got scheme {loc.scheme!r}")
    if not loc.host:
        raise NfsUrlError(f"{loc.url!r}: an NFS URL needs a server: nfs://HOST/EXPORT/FILE")
    unknown = set(loc.query) - PARAMS
    if unknown:
        raise NfsUrlError(
            f"{loc.url!r}: unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"expected some of {', '.join(sorted(PARAMS))}"
        )
    path = loc.path
    if not path.startswith("/") or path.endswith("/") or "//" in path:
        raise NfsUrlError(
            f"{loc.url!r}: the path must be /EXPORT/FILE (absolute, naming a file), got {path!r}"
        )
    parts = path.split("/")
    if any(p in (".", "..") for p in parts):
        raise NfsUrlError(f"{loc.url!r}: '.' and '..' are not allowed in the path")
    mount_path, file_name = posixpath.split(path)
    if mount_path == "/":
        raise NfsUrlError(f"{loc.url!r}: the path names no export directory: {path!r}")
    version = _int(loc, "version", 0, 2**31)
    if version is not None and version != 3:
        raise NfsUrlError(f"{loc.url!r}: only NFS version 3 is supported, got version={version}")
    nfsport = _int(loc, "nfsport", 1, _MAX_PORT)
    if nfsport is None:
        nfsport = loc.port
    elif loc.port is not None and loc.port != nfsport:
        raise NfsUrlError(f"{loc.url!r}: port {loc.port} and nfsport={nfsport} disagree")
    page_size = _int(loc, "page_size", 1, 2**31) or DEFAULT_PAGE_SIZE
    check_page_size(page_size)
    timeo: float | None = None
    if "timeo" in loc.query:
        try:
            timeo = float(loc.query["timeo"])
        except ValueError:
            raise NfsUrlError(
                f"{loc.url!r}: timeo must be seconds, got {loc.query['timeo']!r}"
            ) from None
        if not (timeo > 0 and math.isfinite(timeo)):
            raise NfsUrlError(f"{loc.url!r}: timeo must be > 0 seconds, got {timeo}")
    return NfsUrl(
        host=loc.host,
        mount_path=mount_path,
        file_name=file_name,
        nfsport=nfsport,
        mountport=_int(loc, "mountport", 1, _MAX_PORT),
        uid=_int(loc, "uid", 0, 2**32 - 1) or 0,
        gid=_int(loc, "gid", 0, 2**32 - 1) or 0,
        page_size=page_size,
        timeo=timeo,
        retrans=_int(loc, "retrans", 0, 100),
        nconnect=_int(loc, "nconnect", 1, MAX_NCONNECT) or 1,
    )
